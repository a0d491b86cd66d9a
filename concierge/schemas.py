from __future__ import annotations

from datetime import datetime
from typing import Annotated

from ninja import Schema
from pydantic import AfterValidator, Field

from concierge.models import Category, RequestStatus, Visibility
from concierge.selectors import member_display_name
from core.schemas import RowSchema


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("Must not contain NUL characters.")
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("Must not be blank.")
    return value


Text = Annotated[str, AfterValidator(_no_nul)]


class RequestIn(Schema):
    category: Category
    subject: Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_no_nul), AfterValidator(_not_blank)]
    details: Annotated[str, Field(max_length=5000), AfterValidator(_no_nul)] = ""
    visibility: Visibility = Visibility.PRIVATE


class ReplyIn(Schema):
    body: Annotated[str, Field(min_length=1, max_length=5000), AfterValidator(_no_nul), AfterValidator(_not_blank)]


class RateIn(Schema):
    rating: int = Field(ge=1, le=5)
    comment: Annotated[str, Field(max_length=2000), AfterValidator(_no_nul)] = ""


class TransitionIn(Schema):
    to: RequestStatus = Field(description="The target status.")
    note: Annotated[str, Field(max_length=255), AfterValidator(_no_nul)] = ""


class AssignIn(Schema):
    assignee_id: int | None = Field(
        None,
        ge=1,
        le=2**63 - 1,
        description="A colleague's `id` from GET /concierge/agent/agents; the caller when omitted.",
    )
    assignee_email: str | None = Field(
        None,
        min_length=3,
        max_length=254,
        pattern=r"^[^\x00\s]+@[^\x00\s]+$",
        description="Or the colleague's `email` from GET /concierge/agent/agents (not both).",
    )


class AgentOut(Schema):
    """A colleague an agent may assign a request to."""

    id: int
    name: str
    email: str
    open_assigned: int = Field(description="Open requests (new to awaiting member) assigned to this agent.")

    @staticmethod
    def resolve_name(obj) -> str:
        return obj.get_full_name() or obj.email


class MessageOut(Schema):
    id: int
    body: str
    from_agent: bool
    author_name: str
    created_at: datetime

    @staticmethod
    def resolve_from_agent(obj) -> bool:
        return obj.author_kind == "agent"

    @staticmethod
    def resolve_author_name(obj) -> str:
        # Members see an agent's first name only.
        return obj.author.first_name or ("Concierge" if obj.author_kind == "agent" else "You")


class AgentMessageOut(MessageOut):
    internal: bool
    author_id: int

    @staticmethod
    def resolve_author_name(obj) -> str:
        return obj.author.get_full_name() or obj.author.email


class RequestOut(RowSchema):  # a created request's answer is validated again as a dict (core.idempotency)
    id: int
    category: str
    subject: str
    details: str
    visibility: str
    status: str
    created_at: datetime
    first_response_due_at: datetime
    resolution_due_at: datetime
    first_response_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    rating: int | None
    rating_comment: str


class RequestDetailOut(RequestOut):
    messages: list[MessageOut]

    @staticmethod
    def resolve_messages(obj) -> list:
        return obj.conversation


class AgentRequestOut(RequestOut):
    priority: int
    due_at: datetime | None
    assignee_id: int | None
    assignee_email: str | None
    membership_id: int
    customer_id: int
    member_name: str
    tier: str | None
    first_response_breached: bool
    resolution_breached: bool
    escalated_at: datetime | None

    @staticmethod
    def resolve_assignee_email(obj) -> str | None:
        return obj.assignee.email if obj.assignee_id else None

    @staticmethod
    def resolve_customer_id(obj) -> int:
        return obj.membership.customer_id

    @staticmethod
    def resolve_member_name(obj) -> str:
        return obj.membership.customer.name

    @staticmethod
    def resolve_tier(obj) -> str | None:
        return obj.tier.name if obj.tier_id else None


class AgentRequestDetailOut(AgentRequestOut):
    messages: list[AgentMessageOut]

    @staticmethod
    def resolve_messages(obj) -> list:
        return obj.conversation


class EventOut(Schema):
    id: int
    action: str
    actor_id: int | None
    field: str
    old_value: str
    new_value: str
    note: str
    at: datetime


class SlaPartOut(Schema):
    due_at: datetime
    done_at: datetime | None
    met: bool | None = Field(description="Null while not done.")
    breached: bool
    seconds_left: int | None = Field(description="Until the due time (negative when late); null once done.")


class SlaStatusOut(Schema):
    request_id: int
    status: str
    priority: int
    escalated_at: datetime | None
    first_response: SlaPartOut
    resolution: SlaPartOut


class FeedItemOut(Schema):
    id: int
    category: str
    subject: str
    member: str = Field(description="First name and initial only.")
    fulfilled_at: datetime | None

    @staticmethod
    def resolve_member(obj) -> str:
        return member_display_name(obj.membership.customer.name)

    @staticmethod
    def resolve_fulfilled_at(obj) -> datetime | None:
        return obj.resolved_at


class SlaReportRowOut(Schema):
    tier: str | None
    tier_rank: int | None
    category: str
    requests: int
    responded: int
    first_response_met: int
    first_response_met_share: float | None = Field(description="Requests answered within the SLA / requests.")
    resolved: int
    resolution_met: int
    resolution_met_share: float | None = Field(description="Resolved within the SLA / resolved requests.")
    first_response_breached: int
    resolution_breached: int
    median_first_response_seconds: float | None
    median_resolution_seconds: float | None
