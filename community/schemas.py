from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from ninja import Schema
from pydantic import AfterValidator, Field

from community.models import IdeaCategory, IdeaStatus, Nominee, Poll
from community.selectors import display_name


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("Must not contain NUL characters.")
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("Must not be blank.")
    return value


def _author_name(obj) -> str:
    """First name and initial; an already rendered body (an idempotent replay) keeps its value."""
    if isinstance(obj, dict):
        return obj["author"]
    return display_name(obj.author.name)


Title = Annotated[str, Field(min_length=1, max_length=120), AfterValidator(_no_nul), AfterValidator(_not_blank)]
Body = Annotated[str, Field(min_length=1, max_length=5000), AfterValidator(_no_nul), AfterValidator(_not_blank)]
CommentBody = Annotated[str, Field(min_length=1, max_length=2000), AfterValidator(_no_nul), AfterValidator(_not_blank)]
Reason = Annotated[str, Field(min_length=1, max_length=255), AfterValidator(_no_nul), AfterValidator(_not_blank)]
Note = Annotated[str, Field(max_length=255), AfterValidator(_no_nul)]
Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_no_nul), AfterValidator(_not_blank)]
Description = Annotated[str, Field(max_length=5000), AfterValidator(_no_nul)]
Option = Annotated[str, Field(min_length=1, max_length=120), AfterValidator(_no_nul), AfterValidator(_not_blank)]
Money = Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=2)]
Code = Annotated[str, Field(min_length=1, max_length=16, pattern=r"^[A-Za-z0-9]+$")]


# ------------------------------------------------------------------------------------------ ideas


class RoundIn(Schema):
    title: Name
    description: Description = ""
    starts_at: datetime
    ends_at: datetime
    budget: Money
    currency: str = Field("EUR", pattern=r"^[A-Z]{3}$")


class RoundOut(Schema):
    id: int
    title: str
    description: str
    starts_at: datetime
    ends_at: datetime
    budget: Decimal
    funded_total: Decimal
    currency: str


class IdeaIn(Schema):
    title: Title
    body: Body
    category: IdeaCategory


class CommentOut(Schema):
    id: int
    author: str = Field(description="First name and initial.")
    body: str
    created_at: datetime

    @staticmethod
    def resolve_author(obj) -> str:
        return _author_name(obj)


class IdeaOut(Schema):
    id: int
    round_id: int
    title: str
    body: str
    category: IdeaCategory
    status: IdeaStatus
    vote_count: int
    funded_amount: Decimal | None
    author: str = Field(description="First name and initial.")
    voted_by_me: bool
    created_at: datetime

    @staticmethod
    def resolve_author(obj) -> str:
        return _author_name(obj)

    @staticmethod
    def resolve_voted_by_me(obj) -> bool:
        if isinstance(obj, dict):
            return obj["voted_by_me"]
        return bool(getattr(obj, "my_vote", False))


class IdeaDetailOut(IdeaOut):
    comments: list[CommentOut]

    @staticmethod
    def resolve_comments(obj) -> list:
        return obj.visible_comments


class ManagerIdeaOut(IdeaOut):
    author_customer_id: int
    hidden: bool
    hidden_reason: str

    @staticmethod
    def resolve_author_customer_id(obj) -> int:
        return obj.author_id


class TransitionIn(Schema):
    to: IdeaStatus
    note: Note = ""


class FundIn(Schema):
    amount: Annotated[Decimal, Field(gt=0, max_digits=14, decimal_places=2)]


class HideIn(Schema):
    reason: Reason


class CommentIn(Schema):
    body: CommentBody


# ------------------------------------------------------------------------------------------ polls


class PollIn(Schema):
    kind: Poll.Kind = Poll.Kind.POLL
    title: Name
    body: Description = ""
    options: list[Option] = Field(default_factory=list, max_length=10)
    closes_at: datetime


class PollSummaryOut(Schema):
    id: int
    kind: Poll.Kind
    title: str
    closes_at: datetime


class PollOptionOut(Schema):
    id: int
    label: str
    answers: int | None = Field(description="Shown after the caller answered or after closing.")


class PollOut(Schema):
    id: int
    kind: Poll.Kind
    title: str
    body: str
    closes_at: datetime
    closed: bool
    my_option_id: int | None
    results_visible: bool
    total_answers: int | None
    options: list[PollOptionOut]
    comments: list[CommentOut]


class AnswerIn(Schema):
    option_id: int = Field(ge=1, le=2**63 - 1)


# -------------------------------------------------------------------------------------- campaigns


class CampaignIn(Schema):
    programme_id: int = Field(ge=1, le=2**63 - 1)
    name: Name
    description: Description = ""
    starts_at: datetime
    ends_at: datetime
    holdout_percent: Annotated[Decimal, Field(ge=0, le=50, max_digits=5, decimal_places=2)] = Decimal(0)
    max_ambassadors: int = Field(ge=1, le=1_000_000)
    open_to_members: bool = False


class CampaignOut(Schema):
    id: int
    programme_id: int
    name: str
    description: str
    starts_at: datetime
    ends_at: datetime
    holdout_percent: Decimal
    max_ambassadors: int
    open_to_members: bool


class NominateIn(Schema):
    segment_run_id: int = Field(ge=1, le=2**63 - 1)
    cap: int | None = Field(
        None, ge=1, le=1_000_000, description="At most this many now (and never beyond the campaign's max_ambassadors)."
    )


class NominateOut(Schema):
    campaign_id: int
    nominated: int
    ambassadors: int
    held_out: int
    room_left: int


class NomineeOut(Schema):
    id: int
    customer_id: int
    customer_name: str
    group: Nominee.Group
    rank: int
    nominated_at: datetime
    received: str
    received_at: datetime | None

    @staticmethod
    def resolve_customer_name(obj) -> str:
        return obj.customer.name


class ReceivedIn(Schema):
    received: Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_no_nul), AfterValidator(_not_blank)]


class MyCampaignOut(Schema):
    campaign_id: int
    name: str
    description: str
    starts_at: datetime
    ends_at: datetime
    active: bool
    role: str = Field(description="ambassador, member (campaign open to members) or referred.")
    received: str
    received_at: datetime | None
    referral_code: str | None


class MyCommunityOut(Schema):
    ambassador: bool
    campaigns: list[MyCampaignOut]


class CodeOut(Schema):
    campaign_id: int
    code: str
    created_at: datetime


class ClaimIn(Schema):
    code: Code


class ReferralOut(Schema):
    id: int
    campaign_id: int
    generation: int
    attributed_at: datetime


class PerAmbassadorOut(Schema):
    customer_id: int
    name: str
    nominee_group: str
    direct_referrals: int
    chain_referrals: int
    direct_conversions: int
    chain_conversions: int
    max_depth: int
    chain_revenue: Decimal


class DepthOut(Schema):
    generation: int
    referrals: int
    converted: int


class KOut(Schema):
    generation: int
    referrers: int
    converted: int
    k: float | None


class UpliftOut(Schema):
    ambassadors: int
    held_out: int
    ambassador_mean: float | None
    held_out_mean: float | None
    difference: float | None
    ci_low: float | None
    ci_high: float | None


class CampaignReportOut(Schema):
    campaign_id: int
    name: str
    nominees: int
    ambassadors: int
    held_out: int
    referrals: int
    conversions: int
    referred_revenue: Decimal
    per_ambassador: list[PerAmbassadorOut]
    depth_distribution: list[DepthOut]
    k_per_generation: list[KOut]
    k: float | None
    uplift: UpliftOut


class InfluenceRefreshOut(Schema):
    conversions_marked: int
    customers: int
