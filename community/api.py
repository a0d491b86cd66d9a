"""Community API under /community/... and /me/community (thin: parse, call a service or selector, serialize).

Reading the idea space and polls needs a login (any role); members appear by first name and initial. Posting,
voting, answering and commenting need an active treatment membership (403 `not_a_member` for anyone else,
control customers included). Moderation, funding, polls, campaigns and reports need `programme_manager`."""

from datetime import UTC, datetime

from ninja import Path, Query, Router, Schema, Status
from ninja.pagination import paginate
from pydantic import Field

from accounts.models import Role
from community import selectors
from community.models import IdeaCategory, IdeaStatus, Nominee
from community.schemas import (
    AnswerIn,
    CampaignIn,
    CampaignOut,
    CampaignReportOut,
    ClaimIn,
    CodeOut,
    CommentIn,
    CommentOut,
    FundIn,
    HideIn,
    IdeaDetailOut,
    IdeaIn,
    IdeaOut,
    InfluenceRefreshOut,
    ManagerIdeaOut,
    MyCommunityOut,
    NominateIn,
    NominateOut,
    NomineeOut,
    PollIn,
    PollOut,
    PollSummaryOut,
    ReceivedIn,
    ReferralOut,
    RoundIn,
    RoundOut,
    TransitionIn,
)
from community.services import campaigns, comments, ideas, influence, polls, referrals
from core.auth import request_user, require_role, user_auth
from core.errors import ValidationFailed
from core.idempotency import IdempotencyKeyHeader, run_idempotent
from core.pagination import Page
from core.schemas import describe, responses

router = Router(auth=user_auth)

MAX_ID = 2**63 - 1
RoundId = Path(..., ge=1, le=MAX_ID, description="Idea round id.")
IdeaId = Path(..., ge=1, le=MAX_ID, description="Idea id.")
PollId = Path(..., ge=1, le=MAX_ID, description="Poll id.")
CommentId = Path(..., ge=1, le=MAX_ID, description="Comment id.")
CampaignId = Path(..., ge=1, le=MAX_ID, description="Campaign id.")
NomineeId = Path(..., ge=1, le=MAX_ID, description="Nominee id.")

MEMBER, IDEAS, POLLS, MANAGER, REFERRALS = (
    "community: member",
    "community: ideas",
    "community: polls",
    "community: manager",
    "community: referrals",
)


def _utc(value: datetime, field: str) -> datetime:
    """Aware UTC (naive input is read as UTC); offsets the database cannot store become a 422."""
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ValidationFailed(fields={field: ["Out of range."]}) from None


def _viewer(request) -> int | None:
    return selectors.viewer_customer_id(request_user(request))


# ------------------------------------------------------------------------------------------ member


@router.get(
    "/me/community",
    response=responses({200: MyCommunityOut}),
    tags=[MEMBER],
    summary="My ambassador status and campaigns",
    description=describe(
        "any logged-in user.",
        "Any logged-in user. Campaigns where the caller is an ambassador, may refer as a member, or was "
        "referred, with their referral code. Held-out nominees and control customers get the same empty answer "
        "as anyone else.",
    ),
)
def my_community(request):
    return selectors.member_community(user=request_user(request))


@router.post(
    "/community/campaigns/{campaign_id}/code",
    response=responses({200: CodeOut}, 409),
    tags=[REFERRALS],
    summary="My referral code in a campaign",
    description=describe(
        "any logged-in user.",
        "Ambassadors, members of campaigns open to members, and customers referred in the campaign; the same "
        "code every time. Anyone else: 404 `campaign_not_found` (a campaign is never revealed). Ended campaign: "
        "409 `campaign_ended`.",
        errors={409: "`campaign_not_found`; `campaign_ended`: the state does not allow it (see above)."},
    ),
)
def my_code(request, campaign_id: int = CampaignId):
    code = referrals.referral_code_get_or_create(user=request_user(request), campaign_id=campaign_id)
    return {"campaign_id": code.campaign_id, "code": code.code, "created_at": code.created_at}


@router.post(
    "/community/referrals/claim",
    response=responses({201: ReferralOut}, 409),
    tags=[REFERRALS],
    summary="Enter the referral code I was given (sign-up)",
    description=describe(
        "any logged-in user.",
        "A newly signed-up customer attributes themselves to the code's holder. 400 `unknown_code`, "
        "`outside_window`, `not_a_new_customer`, `self_referral`, `referrer_inactive`, `no_customer`; 409 "
        "`already_attributed` (one attribution per customer, the first valid code wins).",
        errors={
            409: "`unknown_code`; `outside_window`; `not_a_new_customer`; `self_referral`; `referrer_inactive`; "
            "`no_customer`; `already_attributed`: the state does not allow it (see above)."
        },
    ),
)
def claim(request, payload: ClaimIn):
    referral = referrals.referral_claim(user=request_user(request), code=payload.code)
    return Status(
        201,
        {
            "id": referral.pk,
            "campaign_id": referral.campaign_id,
            "generation": referral.generation,
            "attributed_at": referral.attributed_at,
        },
    )


# ------------------------------------------------------------------------------------------- ideas


@router.get(
    "/community/rounds",
    response=responses({200: list[RoundOut]}),
    tags=[IDEAS],
    summary="Idea rounds",
    description=describe("any logged-in user.", "Any logged-in user. Newest first."),
)
@paginate(Page)
def list_rounds(request):
    request_user(request)
    return selectors.rounds()


class IdeaFilters(Schema):
    sort: str = Field("votes", pattern="^(votes|new)$", description="`votes` (most first) or `new`.")
    category: IdeaCategory | None = None


@router.get(
    "/community/rounds/{round_id}/ideas",
    response=responses({200: list[IdeaOut]}),
    tags=[IDEAS],
    summary="Ideas of a round, with vote counts",
    description=describe(
        "any logged-in user.",
        "Any logged-in user. Ideas a manager opened and did not hide, most votes first; authors by first name "
        "and initial; `voted_by_me` for the caller.",
    ),
)
@paginate(Page)
def list_ideas(request, filters: Query[IdeaFilters], round_id: int = RoundId):
    return selectors.round_ideas(
        round_id=round_id, customer_id=_viewer(request), sort=filters.sort, category=filters.category
    )


@router.post(
    "/community/rounds/{round_id}/ideas",
    response=responses({201: IdeaOut}, 409),
    tags=[IDEAS],
    summary="Post an idea",
    description=describe(
        "members with an active treatment membership (anyone else: `not_a_member`).",
        "Members with an active membership, while the round is open (409 `round_closed`). It is `submitted` "
        "until a manager opens it. At most 3 ideas a day: 429 `posting_limit`. Accepts `Idempotency-Key`: a "
        "retry returns the first answer.",
        errors={409: "`round_closed`; `submitted`: the state does not allow it (see above)."},
    ),
)
def post_idea(request, payload: IdeaIn, round_id: int = RoundId, idempotency_key: str | None = IdempotencyKeyHeader):
    user = request_user(request)

    def action():
        idea = ideas.idea_post(
            user=user, round_id=round_id, title=payload.title, body=payload.body, category=payload.category
        )
        return selectors.idea_get(idea_id=idea.pk, customer_id=idea.author_id)

    return run_idempotent(request, key=idempotency_key, payload=payload, action=action, out=IdeaOut)


@router.get(
    "/community/ideas/{idea_id}",
    response=responses({200: IdeaDetailOut}),
    tags=[IDEAS],
    summary="An idea with its comments",
    description=describe(
        "any logged-in user.",
        "Any logged-in user; hidden ideas and ideas not opened yet (except to their author) are 404.",
    ),
)
def get_idea(request, idea_id: int = IdeaId):
    return selectors.idea_get(idea_id=idea_id, customer_id=_viewer(request))


@router.post(
    "/community/ideas/{idea_id}/vote",
    response=responses({200: IdeaOut}, 409),
    tags=[IDEAS],
    summary="Vote for an idea",
    description=describe(
        "members with an active treatment membership (anyone else: `not_a_member`).",
        "Members; once per idea (409 `already_voted`), on open or shortlisted ideas (409 `idea_not_votable`) of "
        "an open round (409 `round_closed`), not one's own (400 `own_idea`).",
        errors={
            409: "`already_voted`; `idea_not_votable`; `round_closed`; `own_idea`: the state does not allow it "
            "(see above)."
        },
    ),
)
def vote(request, idea_id: int = IdeaId):
    user = request_user(request)
    ideas.vote_cast(user=user, idea_id=idea_id)
    return selectors.idea_get(idea_id=idea_id, customer_id=selectors.viewer_customer_id(user))


@router.delete(
    "/community/ideas/{idea_id}/vote",
    response=responses({200: IdeaOut}, 409),
    tags=[IDEAS],
    summary="Withdraw my vote",
    description=describe(
        "members with an active treatment membership (anyone else: `not_a_member`).",
        "Members, while the round is open and the idea takes votes. No vote: 404 `vote_not_found`.",
        errors={409: "`vote_not_found`: the state does not allow it (see above)."},
    ),
)
def unvote(request, idea_id: int = IdeaId):
    user = request_user(request)
    ideas.vote_withdraw(user=user, idea_id=idea_id)
    return selectors.idea_get(idea_id=idea_id, customer_id=selectors.viewer_customer_id(user))


@router.post(
    "/community/ideas/{idea_id}/comments",
    response=responses({201: CommentOut}, 409),
    tags=[IDEAS],
    summary="Comment on an idea",
    description=describe(
        "members with an active treatment membership (anyone else: `not_a_member`).",
        "Members. At most 10 comments an hour: 429 `posting_limit`. Finished ideas or closed rounds: 409 "
        "`comments_closed`.",
        errors={409: "`comments_closed`: the state does not allow it (see above)."},
    ),
)
def comment_idea(
    request, payload: CommentIn, idea_id: int = IdeaId, idempotency_key: str | None = IdempotencyKeyHeader
):
    user = request_user(request)
    return run_idempotent(
        request,
        key=idempotency_key,
        payload=payload,
        action=lambda: comments.comment_post(user=user, idea_id=idea_id, body=payload.body),
        out=CommentOut,
    )


# ------------------------------------------------------------------------------------------- polls


@router.get(
    "/community/polls",
    response=responses({200: list[PollSummaryOut]}),
    tags=[POLLS],
    summary="Polls and news",
    description=describe("any logged-in user.", "Any logged-in user. Newest first; hidden ones are left out."),
)
@paginate(Page)
def list_polls(request):
    request_user(request)
    return selectors.polls()


@router.get(
    "/community/polls/{poll_id}",
    response=responses({200: PollOut}),
    tags=[POLLS],
    summary="A poll, its results (after answering or closing) and comments",
    description=describe(
        "any logged-in user.", "Any logged-in user. Counts are null until the caller answered or the poll closed."
    ),
)
def get_poll(request, poll_id: int = PollId):
    return selectors.poll_get(poll_id=poll_id, customer_id=_viewer(request))


@router.post(
    "/community/polls/{poll_id}/answers",
    response=responses({200: PollOut}, 409),
    tags=[POLLS],
    summary="Answer a poll",
    description=describe(
        "members with an active treatment membership (anyone else: `not_a_member`).",
        "Members, once (409 `already_answered`), before closing (409 `poll_closed`); news takes no answers (409 "
        "`not_a_poll`). Answers with the results.",
        errors={409: "`already_answered`; `poll_closed`; `not_a_poll`: the state does not allow it (see above)."},
    ),
)
def answer_poll(request, payload: AnswerIn, poll_id: int = PollId):
    user = request_user(request)
    polls.poll_answer(user=user, poll_id=poll_id, option_id=payload.option_id)
    return selectors.poll_get(poll_id=poll_id, customer_id=selectors.viewer_customer_id(user))


@router.post(
    "/community/polls/{poll_id}/comments",
    response=responses({201: CommentOut}, 409),
    tags=[POLLS],
    summary="Comment on a poll or news",
    description=describe(
        "members with an active treatment membership (anyone else: `not_a_member`).",
        "Members, until closing (409 `poll_closed`). At most 10 comments an hour: 429 `posting_limit`.",
        errors={409: "`poll_closed`: the state does not allow it (see above)."},
    ),
)
def comment_poll(
    request, payload: CommentIn, poll_id: int = PollId, idempotency_key: str | None = IdempotencyKeyHeader
):
    user = request_user(request)
    return run_idempotent(
        request,
        key=idempotency_key,
        payload=payload,
        action=lambda: comments.comment_post(user=user, poll_id=poll_id, body=payload.body),
        out=CommentOut,
    )


# ----------------------------------------------------------------------------------------- manager


@router.post(
    "/community/rounds",
    response=responses({201: RoundOut}),
    tags=[MANAGER],
    summary="Open an idea round",
    description=describe(
        "programme managers (role `programme_manager`).", "Programme managers. A start, an end and a budget."
    ),
)
def create_round(request, payload: RoundIn):
    user = require_role(request, Role.PROGRAMME_MANAGER)
    round_ = ideas.round_create(
        title=payload.title,
        description=payload.description,
        starts_at=_utc(payload.starts_at, "starts_at"),
        ends_at=_utc(payload.ends_at, "ends_at"),
        budget=payload.budget,
        currency=payload.currency,
        created_by=user,
    )
    return Status(201, round_)


class ManagerIdeaFilters(Schema):
    status: IdeaStatus | None = None
    hidden: bool | None = None


@router.get(
    "/community/manage/rounds/{round_id}/ideas",
    response=responses({200: list[ManagerIdeaOut]}),
    tags=[MANAGER],
    summary="Every idea of a round, for moderation",
    description=describe(
        "programme managers (role `programme_manager`).", "Programme managers. Submitted and hidden ideas included."
    ),
)
@paginate(Page)
def manage_ideas(request, filters: Query[ManagerIdeaFilters], round_id: int = RoundId):
    require_role(request, Role.PROGRAMME_MANAGER)
    return selectors.manager_round_ideas(round_id=round_id, status=filters.status, hidden=filters.hidden)


def _manager_idea(idea_id: int):
    return selectors.manager_idea_get(idea_id=idea_id)


@router.post(
    "/community/ideas/{idea_id}/status",
    response=responses({200: ManagerIdeaOut}, 409),
    tags=[MANAGER],
    summary="Move an idea to another status",
    description=describe(
        "programme managers (role `programme_manager`).",
        "Programme managers. submitted → open|declined, open → shortlisted|declined, shortlisted → "
        "open|declined, funded → delivered; funding is its own operation. Else 409 `invalid_transition`. The "
        "author is emailed.",
        errors={409: "`invalid_transition`: the state does not allow it (see above)."},
    ),
)
def idea_status(request, payload: TransitionIn, idea_id: int = IdeaId):
    user = require_role(request, Role.PROGRAMME_MANAGER)
    ideas.idea_transition(idea_id=idea_id, actor=user, to_status=payload.to, note=payload.note)
    return _manager_idea(idea_id)


@router.post(
    "/community/ideas/{idea_id}/fund",
    response=responses({200: ManagerIdeaOut}, 409),
    tags=[MANAGER],
    summary="Fund a shortlisted idea",
    description=describe(
        "programme managers (role `programme_manager`).",
        "Programme managers. The round's funded total never exceeds its budget: 409 `budget_exceeded` with what "
        "remains. Only shortlisted ideas: 409 `idea_not_shortlisted`.",
        errors={409: "`budget_exceeded`; `idea_not_shortlisted`: the state does not allow it (see above)."},
    ),
)
def idea_fund(request, payload: FundIn, idea_id: int = IdeaId):
    user = require_role(request, Role.PROGRAMME_MANAGER)
    ideas.idea_fund(idea_id=idea_id, actor=user, amount=payload.amount)
    return _manager_idea(idea_id)


@router.post(
    "/community/ideas/{idea_id}/hide",
    response=responses({200: ManagerIdeaOut}, 409),
    tags=[MANAGER],
    summary="Hide an idea",
    description=describe(
        "programme managers (role `programme_manager`).",
        "Programme managers, with a reason. It leaves every member list. Already hidden: 409.",
        errors={409: "`conflict`: the state does not allow it (see above)."},
    ),
)
def idea_hide(request, payload: HideIn, idea_id: int = IdeaId):
    user = require_role(request, Role.PROGRAMME_MANAGER)
    ideas.idea_hide(idea_id=idea_id, actor=user, reason=payload.reason)
    return _manager_idea(idea_id)


@router.post(
    "/community/comments/{comment_id}/hide",
    response=responses({200: CommentOut}, 409),
    tags=[MANAGER],
    summary="Hide a comment",
    description=describe(
        "programme managers (role `programme_manager`).",
        "Programme managers, with a reason. Already hidden: 409 `already_hidden`.",
        errors={409: "`already_hidden`: the state does not allow it (see above)."},
    ),
)
def comment_hide(request, payload: HideIn, comment_id: int = CommentId):
    user = require_role(request, Role.PROGRAMME_MANAGER)
    return comments.comment_hide(comment_id=comment_id, actor=user, reason=payload.reason)


@router.post(
    "/community/polls",
    response=responses({201: PollOut}),
    tags=[MANAGER],
    summary="Post a poll or news",
    description=describe(
        "programme managers (role `programme_manager`).",
        "Programme managers. A poll has 2 to 10 distinct options; news may have none. Closing time in the future.",
    ),
)
def create_poll(request, payload: PollIn):
    user = require_role(request, Role.PROGRAMME_MANAGER)
    poll = polls.poll_create(
        kind=payload.kind,
        title=payload.title,
        body=payload.body,
        options=payload.options,
        closes_at=_utc(payload.closes_at, "closes_at"),
        created_by=user,
    )
    return Status(201, selectors.poll_get(poll_id=poll.pk, customer_id=None))


@router.post(
    "/community/polls/{poll_id}/hide",
    response=responses({200: PollSummaryOut}, 409),
    tags=[MANAGER],
    summary="Hide a poll or news",
    description=describe(
        "programme managers (role `programme_manager`).",
        "Programme managers, with a reason. Already hidden: 409 `already_hidden`.",
        errors={409: "`already_hidden`: the state does not allow it (see above)."},
    ),
)
def poll_hide(request, payload: HideIn, poll_id: int = PollId):
    user = require_role(request, Role.PROGRAMME_MANAGER)
    return polls.poll_hide(poll_id=poll_id, actor=user, reason=payload.reason)


@router.post(
    "/community/campaigns",
    response=responses({201: CampaignOut}),
    tags=[MANAGER],
    summary="Create an ambassador campaign",
    description=describe(
        "programme managers (role `programme_manager`).",
        "Programme managers. A window, a cap on nominees, the held-out share of nominees (0-50%).",
    ),
)
def create_campaign(request, payload: CampaignIn):
    user = require_role(request, Role.PROGRAMME_MANAGER)
    campaign = campaigns.campaign_create(
        programme_id=payload.programme_id,
        name=payload.name,
        description=payload.description,
        starts_at=_utc(payload.starts_at, "starts_at"),
        ends_at=_utc(payload.ends_at, "ends_at"),
        holdout_percent=payload.holdout_percent,
        max_ambassadors=payload.max_ambassadors,
        open_to_members=payload.open_to_members,
        created_by=user,
    )
    return Status(201, campaign)


@router.get(
    "/community/campaigns",
    response=responses({200: list[CampaignOut]}),
    tags=[MANAGER],
    summary="Ambassador campaigns",
    description=describe("programme managers (role `programme_manager`).", "Programme managers."),
)
@paginate(Page)
def list_campaigns(request):
    require_role(request, Role.PROGRAMME_MANAGER)
    return selectors.campaigns()


@router.post(
    "/community/campaigns/{campaign_id}/nominations",
    response=responses({200: NominateOut}, 409),
    tags=[MANAGER],
    summary="Nominate ambassadors from a segment run",
    description=describe(
        "programme managers (role `programme_manager`).",
        "Programme managers. The best-ranked active treatment members of the run, up to `cap` and never beyond "
        "the campaign's maximum; each is an ambassador or held out by the reproducible split.",
        errors={409: "`cap`: the state does not allow it (see above)."},
    ),
)
def nominate(request, payload: NominateIn, campaign_id: int = CampaignId):
    require_role(request, Role.PROGRAMME_MANAGER)
    return campaigns.nominees_add(campaign_id=campaign_id, segment_run_id=payload.segment_run_id, cap=payload.cap)


class NomineeFilters(Schema):
    group: Nominee.Group | None = None


@router.get(
    "/community/campaigns/{campaign_id}/nominees",
    response=responses({200: list[NomineeOut]}),
    tags=[MANAGER],
    summary="A campaign's nominees",
    description=describe("programme managers (role `programme_manager`).", "Programme managers. In rank order."),
)
@paginate(Page)
def list_nominees(request, filters: Query[NomineeFilters], campaign_id: int = CampaignId):
    require_role(request, Role.PROGRAMME_MANAGER)
    return selectors.campaign_nominees(campaign_id=campaign_id, group=filters.group)


@router.post(
    "/community/nominees/{nominee_id}/received",
    response=responses({200: NomineeOut}, 409),
    tags=[MANAGER],
    summary="Record what an ambassador received",
    description=describe(
        "programme managers (role `programme_manager`).",
        "Programme managers. Held-out nominees receive nothing: 409 `held_out_nominee`.",
        errors={409: "`held_out_nominee`: the state does not allow it (see above)."},
    ),
)
def record_received(request, payload: ReceivedIn, nominee_id: int = NomineeId):
    require_role(request, Role.PROGRAMME_MANAGER)
    return campaigns.nominee_record_received(nominee_id=nominee_id, received=payload.received)


@router.get(
    "/community/campaigns/{campaign_id}/report",
    response=responses({200: CampaignReportOut}),
    tags=[MANAGER],
    summary="Campaign report",
    description=describe(
        "programme managers (role `programme_manager`).",
        "Programme managers. Referrals and conversions per ambassador (top 100 chains), chain depth "
        "distribution, K per generation (converted ÷ distinct referrers) and overall, revenue of referred "
        "customers since attribution, and the uplift in revenue per nominee of ambassadors over held-out "
        "nominees with a 95% interval.",
    ),
)
def campaign_report(request, campaign_id: int = CampaignId):
    require_role(request, Role.PROGRAMME_MANAGER)
    return selectors.campaign_report(campaign_id=campaign_id)


@router.post(
    "/community/influence/refresh",
    response=responses({200: InfluenceRefreshOut}),
    tags=[MANAGER],
    summary="Recompute conversions and influence now",
    description=describe(
        "programme managers (role `programme_manager`).",
        "Programme managers. Marks converted referrals and rewrites every customer's influence (the segment "
        "rule field `influence`). Also runs periodically.",
    ),
)
def refresh_influence(request):
    require_role(request, Role.PROGRAMME_MANAGER)
    return influence.influence_refresh()
