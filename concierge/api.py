"""Concierge API: member, agent and manager operations under /concierge/... (thin: parse, call, serialize)."""

from datetime import UTC, datetime

from ninja import Path, Query, Router, Schema, Status
from ninja.pagination import paginate
from pydantic import Field

from accounts.models import Role
from concierge import selectors
from concierge.models import Category, RequestStatus
from concierge.schemas import (
    AgentMessageOut,
    AgentOut,
    AgentRequestDetailOut,
    AgentRequestOut,
    AssignIn,
    EventOut,
    FeedItemOut,
    MessageOut,
    RateIn,
    ReplyIn,
    RequestDetailOut,
    RequestIn,
    RequestOut,
    SlaReportRowOut,
    SlaStatusOut,
    TransitionIn,
)
from concierge.services import assignment, messages, requests
from core.auth import request_user, require_role, user_auth
from core.errors import ValidationFailed
from core.idempotency import IdempotencyKeyHeader, run_idempotent
from core.pagination import Page
from core.schemas import describe, responses
from loyalty.programmes.selectors.members import member_context

router = Router(auth=user_auth)

MAX_ID = 2**63 - 1
RequestId = Path(..., ge=1, le=MAX_ID, description="Concierge request id.")

MEMBER = "members: any logged-in user, on their own requests only."
AGENTS = "concierge agents (role `concierge_agent`)."
MINE_404 = "`request_not_found`: no such request, or another member's (the same answer for both)."
REQUEST_404 = "`request_not_found`: no concierge request with this id."
CLOSED_409 = "`request_closed`: the request is fulfilled, declined or cancelled."


# ---------------------------------------------------------------- member


@router.post(
    "/concierge/requests",
    response=responses({201: RequestOut}, 409),
    tags=["concierge: member"],
    summary="Send a concierge request",
    description=describe(
        "members with an active treatment membership.",
        "Priority and SLA due times follow the tier. Accepts an `Idempotency-Key`.",
        errors={
            400: "`allowance_exhausted`: the tier's monthly allowance is used up; `fields.allowance`, `fields.used` "
            "and `fields.resets_at` say how many, and when it resets.",
            403: [
                "`role_required`: the caller lacks the member role (as for event bookings).",
                "`not_a_member`: no active treatment membership (control group and ended memberships included).",
                "`no_tier`: the membership has no tier with concierge benefits.",
            ],
            422: "`validation_error`: also a blank subject.",
        },
    ),
)
def create_request(request, payload: RequestIn, idempotency_key: str | None = IdempotencyKeyHeader):
    member = member_context(request)  # None as membership: the service refuses (403 `not_a_member`)
    if not member.has_member_role:
        require_role(request, Role.MEMBER)  # 403 `role_required`, before anything is claimed or written

    def action():
        return requests.request_create(
            user=member.user,
            membership=member.membership,
            category=payload.category,
            subject=payload.subject,
            details=payload.details,
            visibility=payload.visibility,
        )

    return run_idempotent(request, key=idempotency_key, payload=payload, action=action, out=RequestOut)


class MemberFilters(Schema):
    status: RequestStatus | None = None


@router.get(
    "/concierge/requests",
    response=responses({200: list[RequestOut]}),
    tags=["concierge: member"],
    summary="My concierge requests",
    description=describe(MEMBER, "The caller's own requests, newest first, optionally by status. Paginated."),
)
@paginate(Page)
def list_my_requests(request, filters: Query[MemberFilters]):
    return selectors.member_requests(user=request_user(request), status=filters.status)


@router.get(
    "/concierge/requests/{request_id}",
    response=responses({200: RequestDetailOut}),
    tags=["concierge: member"],
    summary="One of my requests, with the conversation",
    description=describe(
        MEMBER, "The request and its public conversation; internal notes are never included.", errors={404: MINE_404}
    ),
)
def get_my_request(request, request_id: int = RequestId):
    return selectors.member_request_get(user=request_user(request), request_id=request_id)


@router.post(
    "/concierge/requests/{request_id}/replies",
    response=responses({201: MessageOut}, 409),
    tags=["concierge: member"],
    summary="Reply on my request",
    description=describe(
        MEMBER,
        "Open requests only. A request awaiting the member goes back to in progress.",
        errors={404: MINE_404, 409: CLOSED_409, 422: "`validation_error`: also a blank body."},
    ),
)
def reply_my_request(request, payload: ReplyIn, request_id: int = RequestId):
    message = messages.message_member_reply(request_id=request_id, user=request_user(request), body=payload.body)
    return Status(201, message)


@router.post(
    "/concierge/requests/{request_id}/cancel",
    response=responses({200: RequestOut}, 409),
    tags=["concierge: member"],
    summary="Cancel my request",
    description=describe(
        MEMBER,
        "Open requests only.",
        errors={404: MINE_404, 409: "`invalid_transition`: the request is no longer open."},
    ),
)
def cancel_my_request(request, request_id: int = RequestId):
    return requests.request_cancel(request_id=request_id, user=request_user(request))


@router.post(
    "/concierge/requests/{request_id}/rating",
    response=responses({200: RequestOut}, 409),
    tags=["concierge: member"],
    summary="Rate my request",
    description=describe(
        MEMBER,
        "A rating from 1 to 5 and an optional comment, once, when the request is fulfilled or declined.",
        errors={
            404: MINE_404,
            409: [
                "`already_rated`: the request has a rating.",
                "`request_not_rateable`: the request is not fulfilled or declined yet.",
            ],
        },
    ),
)
def rate_my_request(request, payload: RateIn, request_id: int = RequestId):
    return requests.request_rate(
        request_id=request_id, user=request_user(request), rating=payload.rating, comment=payload.comment
    )


@router.get(
    "/concierge/public-feed",
    response=responses({200: list[FeedItemOut]}),
    tags=["concierge: member"],
    summary="Fulfilled public requests",
    description=describe(
        "any logged-in user.",
        "Requests their members made public, once fulfilled. Members appear by first name and initial. Paginated.",
    ),
)
@paginate(Page)
def public_feed(request):
    request_user(request)
    return selectors.public_feed()


# ---------------------------------------------------------------- agent


class QueueFilters(Schema):
    status: RequestStatus | None = Field(None, description="Default: every open status.")
    category: Category | None = None
    breached: bool | None = Field(None, description="Only requests with (true) or without (false) a breach.")
    assignee: str | None = Field(
        None, max_length=24, description="An agent's user id, `me`, or `none` for unassigned requests."
    )


def _assignee_filter(value: str | None, user) -> dict:
    if value is None or value == "":
        return {}
    if value == "me":
        return {"assignee_id": user.pk}
    if value == "none":
        return {"unassigned": True}
    if value.isdigit() and 1 <= int(value) <= MAX_ID:
        return {"assignee_id": int(value)}
    raise ValidationFailed(fields={"assignee": ["A user id, 'me' or 'none'."]})


@router.get(
    "/concierge/agent/queue",
    response=responses({200: list[AgentRequestOut]}),
    tags=["concierge: agent"],
    summary="The request queue",
    description=describe(
        AGENTS,
        "Open requests, nearest SLA due time first, then higher priority; filter by status, category, breach and "
        "assignee. Paginated.",
        errors={422: "`validation_error`: also an `assignee` that is not a user id, `me` or `none`."},
    ),
)
@paginate(Page)
def agent_queue(request, filters: Query[QueueFilters]):
    user = require_role(request, Role.CONCIERGE_AGENT)
    return selectors.agent_queue(
        status=filters.status,
        category=filters.category,
        breached=filters.breached,
        **_assignee_filter(filters.assignee, user),
    )


@router.get(
    "/concierge/agent/requests/{request_id}",
    response=responses({200: AgentRequestDetailOut}),
    tags=["concierge: agent"],
    summary="A request with the whole conversation and internal notes",
    description=describe(
        AGENTS, "The request, its member, tier, SLA due times, messages and notes.", errors={404: REQUEST_404}
    ),
)
def agent_get_request(request, request_id: int = RequestId):
    require_role(request, Role.CONCIERGE_AGENT)
    return selectors.agent_request_get(request_id=request_id)


@router.get(
    "/concierge/agent/requests/{request_id}/events",
    response=responses({200: list[EventOut]}),
    tags=["concierge: agent"],
    summary="The request's audit trail",
    description=describe(
        "concierge agents and programme managers (role `concierge_agent` or `programme_manager`).",
        "Every change of the request: who, what, when. Read-only: the audit cannot be edited. Paginated.",
        errors={404: REQUEST_404},
    ),
)
@paginate(Page)
def agent_request_events(request, request_id: int = RequestId):
    require_role(request, Role.CONCIERGE_AGENT, Role.PROGRAMME_MANAGER)
    return selectors.request_events(request_id=request_id)


@router.get(
    "/concierge/agent/requests/{request_id}/sla",
    response=responses({200: SlaStatusOut}),
    tags=["concierge: agent"],
    summary="SLA status of a request",
    description=describe(
        AGENTS, "Due times of first response and resolution, time left, and breaches.", errors={404: REQUEST_404}
    ),
)
def agent_request_sla(request, request_id: int = RequestId):
    require_role(request, Role.CONCIERGE_AGENT)
    return selectors.sla_status(request=selectors.agent_request_get(request_id=request_id))


class DirectoryFilters(Schema):
    q: str | None = Field(None, max_length=200, pattern=r"^[^\x00]*$", description="Part of a name or email.")


@router.get(
    "/concierge/agent/agents",
    response=responses({200: list[AgentOut]}),
    tags=["concierge: agent"],
    summary="The agent directory",
    description=describe(
        AGENTS,
        "Active agents (id, name, email and how many open requests each has assigned), by name; `q` searches name "
        "and email. Assign a request to one of them with its `id` (or `email`).",
    ),
)
@paginate(Page)
def agent_directory(request, filters: Query[DirectoryFilters]):
    require_role(request, Role.CONCIERGE_AGENT)
    return selectors.agent_directory(q=filters.q)


@router.post(
    "/concierge/agent/requests/{request_id}/assign",
    response=responses({200: AgentRequestOut}, 409),
    tags=["concierge: agent"],
    summary="Assign a request",
    description=describe(
        AGENTS,
        "To the caller, or to a colleague from `GET /concierge/agent/agents` by `assignee_id` or `assignee_email` "
        "(not both: 422). Assigning to the current assignee again changes nothing.",
        errors={
            400: "`assignee_not_agent`: the assignee is not an active concierge agent.",
            404: REQUEST_404,
            409: ["`already_assigned`: someone else has the request; unassign it first.", CLOSED_409],
        },
    ),
)
def agent_assign(request, payload: AssignIn, request_id: int = RequestId):
    user = require_role(request, Role.CONCIERGE_AGENT)
    assignment.request_assign(
        request_id=request_id, actor=user, assignee_id=payload.assignee_id, assignee_email=payload.assignee_email
    )
    return selectors.agent_request_get(request_id=request_id)


@router.post(
    "/concierge/agent/requests/{request_id}/unassign",
    response=responses({200: AgentRequestOut}, 409),
    tags=["concierge: agent"],
    summary="Unassign a request",
    description=describe(
        AGENTS, "Takes the assignee off the request.", errors={404: REQUEST_404, 409: "`not_assigned`: nobody has it."}
    ),
)
def agent_unassign(request, request_id: int = RequestId):
    user = require_role(request, Role.CONCIERGE_AGENT)
    assignment.request_unassign(request_id=request_id, actor=user)
    return selectors.agent_request_get(request_id=request_id)


@router.post(
    "/concierge/agent/requests/{request_id}/transition",
    response=responses({200: AgentRequestOut}, 409),
    tags=["concierge: agent"],
    summary="Move a request to another status",
    description=describe(
        AGENTS,
        "new → acknowledged → in_progress ⇄ awaiting_member → fulfilled (also in_progress → fulfilled); declined "
        "and cancelled from any open status.",
        errors={404: REQUEST_404, 409: "`invalid_transition`: the move is not allowed from the current status."},
    ),
)
def agent_transition(request, payload: TransitionIn, request_id: int = RequestId):
    user = require_role(request, Role.CONCIERGE_AGENT)
    requests.request_transition(request_id=request_id, actor=user, to_status=payload.to, note=payload.note)
    return selectors.agent_request_get(request_id=request_id)


@router.post(
    "/concierge/agent/requests/{request_id}/replies",
    response=responses({201: AgentMessageOut}, 409),
    tags=["concierge: agent"],
    summary="Reply to the member",
    description=describe(
        AGENTS,
        "The first public reply is the request's first response; a reply to a `new` request also acknowledges it "
        "(new -> acknowledged, audited; the member gets the reply's email).",
        errors={404: REQUEST_404, 409: CLOSED_409, 422: "`validation_error`: also a blank body."},
    ),
)
def agent_reply(request, payload: ReplyIn, request_id: int = RequestId):
    user = require_role(request, Role.CONCIERGE_AGENT)
    return Status(201, messages.message_agent_reply(request_id=request_id, agent=user, body=payload.body))


@router.post(
    "/concierge/agent/requests/{request_id}/notes",
    response=responses({201: AgentMessageOut}),
    tags=["concierge: agent"],
    summary="Add an internal note",
    description=describe(
        AGENTS,
        "Members never see notes.",
        errors={404: REQUEST_404, 422: "`validation_error`: also a blank body."},
    ),
)
def agent_note(request, payload: ReplyIn, request_id: int = RequestId):
    user = require_role(request, Role.CONCIERGE_AGENT)
    return Status(201, messages.note_add(request_id=request_id, agent=user, body=payload.body))


# ---------------------------------------------------------------- manager


class ReportFilters(Schema):
    since: datetime | None = Field(None, description="Requests created at or after (default: all).")
    until: datetime | None = Field(None, description="Requests created before.")


@router.get(
    "/concierge/reports/sla",
    response=responses({200: list[SlaReportRowOut]}),
    tags=["concierge: manager"],
    summary="SLA figures per tier and category",
    description=describe(
        "programme managers (role `programme_manager`).",
        "Share of SLAs met, median first response and resolution times, breaches, per tier and category.",
        errors={422: "`validation_error`: also a `since` or `until` out of the storable range."},
    ),
)
def sla_report(request, filters: Query[ReportFilters]):
    require_role(request, Role.PROGRAMME_MANAGER)
    return selectors.sla_report(since=_utc(filters.since, "since"), until=_utc(filters.until, "until"))


def _utc(value: datetime | None, field: str) -> datetime | None:
    """Aware UTC (naive input is read as UTC); offsets the database cannot store become a 422."""
    if value is None:
        return None
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ValidationFailed(fields={field: ["Out of range."]}) from None
