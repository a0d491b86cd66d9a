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
from core.schemas import responses

router = Router(auth=user_auth)

MAX_ID = 2**63 - 1
RequestId = Path(..., ge=1, le=MAX_ID, description="Concierge request id.")


# ---------------------------------------------------------------- member


@router.post(
    "/concierge/requests",
    response=responses({201: RequestOut}, 409),
    tags=["concierge: member"],
    summary="Send a concierge request",
    description="Members with an active membership. Priority and SLA due times follow the tier. Past the tier's "
    "monthly allowance: 400 `allowance_exhausted` with `fields.allowance` and `fields.resets_at`. "
    "Control-group customers and ended memberships: 403 `not_a_member`.",
)
def create_request(request, payload: RequestIn, idempotency_key: str | None = IdempotencyKeyHeader):
    user = request_user(request)

    def action():
        return requests.request_create(
            user=user,
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
    description="The caller's own requests, newest first.",
)
@paginate(Page)
def list_my_requests(request, filters: Query[MemberFilters]):
    return selectors.member_requests(user=request_user(request), status=filters.status)


@router.get(
    "/concierge/requests/{request_id}",
    response=responses({200: RequestDetailOut}),
    tags=["concierge: member"],
    summary="One of my requests, with the conversation",
    description="Internal notes are never included. Another member's request is a 404.",
)
def get_my_request(request, request_id: int = RequestId):
    return selectors.member_request_get(user=request_user(request), request_id=request_id)


@router.post(
    "/concierge/requests/{request_id}/replies",
    response=responses({201: MessageOut}, 409),
    tags=["concierge: member"],
    summary="Reply on my request",
    description="Open requests only (409 `request_closed`). A request awaiting the member goes back to in progress.",
)
def reply_my_request(request, payload: ReplyIn, request_id: int = RequestId):
    message = messages.message_member_reply(request_id=request_id, user=request_user(request), body=payload.body)
    return Status(201, message)


@router.post(
    "/concierge/requests/{request_id}/cancel",
    response=responses({200: RequestOut}, 409),
    tags=["concierge: member"],
    summary="Cancel my request",
    description="Open requests only (409 `invalid_transition` otherwise).",
)
def cancel_my_request(request, request_id: int = RequestId):
    return requests.request_cancel(request_id=request_id, user=request_user(request))


@router.post(
    "/concierge/requests/{request_id}/rating",
    response=responses({200: RequestOut}, 409),
    tags=["concierge: member"],
    summary="Rate my request",
    description="Once (409 `already_rated`), 1 to 5, only when fulfilled or declined (409 `request_not_rateable`).",
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
    description="Requests their members made public, once fulfilled. Members appear by first name and initial.",
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
    description="Concierge agents. Nearest SLA due time first, then higher priority.",
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
)
def agent_get_request(request, request_id: int = RequestId):
    require_role(request, Role.CONCIERGE_AGENT)
    return selectors.agent_request_get(request_id=request_id)


@router.get(
    "/concierge/agent/requests/{request_id}/events",
    response=responses({200: list[EventOut]}),
    tags=["concierge: agent"],
    summary="The request's audit trail",
    description="Concierge agents and programme managers. Read-only: the audit cannot be edited.",
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
    description="Concierge agents. Active agents (id, name, email and how many open requests each has assigned), "
    "by name; `q` searches name and email. Assign a request to one of them with its `id` (or `email`).",
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
    description="To the caller, or to a colleague from GET /concierge/agent/agents by `assignee_id` or "
    "`assignee_email` (not both: 422). Not an active agent: 400 `assignee_not_agent`. Already assigned to "
    "someone else: 409 `already_assigned`.",
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
    description="409 `not_assigned` if nobody has it.",
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
    description="new → acknowledged → in_progress ⇄ awaiting_member → fulfilled (also in_progress → fulfilled); "
    "declined and cancelled from any open status. Anything else: 409 `invalid_transition`.",
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
    description="The first public reply is the request's first response; a reply to a `new` request also "
    "acknowledges it (new -> acknowledged, audited; the member gets the reply's email). Closed requests: 409 "
    "`request_closed`.",
)
def agent_reply(request, payload: ReplyIn, request_id: int = RequestId):
    user = require_role(request, Role.CONCIERGE_AGENT)
    return Status(201, messages.message_agent_reply(request_id=request_id, agent=user, body=payload.body))


@router.post(
    "/concierge/agent/requests/{request_id}/notes",
    response=responses({201: AgentMessageOut}),
    tags=["concierge: agent"],
    summary="Add an internal note",
    description="Agents only; members never see notes.",
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
    description="Programme managers. Share of SLAs met, median first response and resolution times, breaches.",
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
