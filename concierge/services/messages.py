"""The conversation: member replies, agent replies (the first public one is the first response) and internal
notes (agents only, never shown to members)."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from concierge.models import OPEN_STATUSES, ConciergeRequest, RequestEvent, RequestMessage, RequestStatus
from concierge.services.audit import event_write
from concierge.services.requests import member_request_locked, request_locked, status_apply
from core.errors import Conflict, ValidationFailed
from core.outbox import enqueue


def _require_open(request: ConciergeRequest) -> None:
    if request.status not in OPEN_STATUSES:
        raise Conflict(
            "The request is closed; no more replies.", code="request_closed", fields={"status": request.status}
        )


def _body(body: str) -> str:
    body = body.strip()
    if not body:
        raise ValidationFailed("The message is empty.", fields={"body": ["Must not be blank."]})
    return body


@transaction.atomic
def message_member_reply(*, request_id: int, user: User, body: str, now: datetime | None = None) -> RequestMessage:
    """The member answers on their own open request; a request awaiting the member goes back to in progress."""
    now = now or timezone.now()
    body = _body(body)
    request = member_request_locked(user=user, request_id=request_id)
    _require_open(request)
    message = RequestMessage.objects.create(
        request=request, author=user, author_kind=RequestMessage.AuthorKind.MEMBER, body=body, created_at=now
    )
    event_write(
        request=request, actor=user, action=RequestEvent.Action.MEMBER_REPLIED, new=f"message {message.pk}", at=now
    )
    if request.status == RequestStatus.AWAITING_MEMBER:
        status_apply(
            request=request, actor=user, to_status=RequestStatus.IN_PROGRESS, now=now, note="The member replied."
        )
    return message


@transaction.atomic
def message_agent_reply(*, request_id: int, agent: User, body: str, now: datetime | None = None) -> RequestMessage:
    """An agent's public reply. The first one is the request's first response (SLA); a reply to a `new` request
    also acknowledges it (new -> acknowledged, with its audit row). The member gets one email: the reply's."""
    now = now or timezone.now()
    body = _body(body)
    request = request_locked(request_id=request_id)
    _require_open(request)
    message = RequestMessage.objects.create(
        request=request, author=agent, author_kind=RequestMessage.AuthorKind.AGENT, body=body, created_at=now
    )
    event = event_write(
        request=request, actor=agent, action=RequestEvent.Action.AGENT_REPLIED, new=f"message {message.pk}", at=now
    )
    fields = ["updated_at"]
    request.updated_at = now
    if request.first_response_at is None:
        request.first_response_at = now
        request.due_at = request.resolution_due_at
        fields += ["first_response_at", "due_at"]
        if now > request.first_response_due_at and not request.first_response_breached:
            request.first_response_breached = True
            fields.append("first_response_breached")
        event_write(
            request=request,
            actor=agent,
            action=RequestEvent.Action.FIRST_RESPONSE,
            field="first_response_at",
            new=now.isoformat(),
            at=now,
        )
    request.save(update_fields=fields)
    if request.status == RequestStatus.NEW:
        status_apply(
            request=request,
            actor=agent,
            to_status=RequestStatus.ACKNOWLEDGED,
            now=now,
            note="Acknowledged by the agent's first reply.",
            notify=False,
        )
    enqueue("concierge.tasks.notify_member", event.pk)
    return message


@transaction.atomic
def note_add(*, request_id: int, agent: User, body: str, now: datetime | None = None) -> RequestMessage:
    """An internal note (agents only; allowed on closed requests too)."""
    now = now or timezone.now()
    body = _body(body)
    request = request_locked(request_id=request_id)
    message = RequestMessage.objects.create(
        request=request,
        author=agent,
        author_kind=RequestMessage.AuthorKind.AGENT,
        body=body,
        internal=True,
        created_at=now,
    )
    event_write(
        request=request, actor=agent, action=RequestEvent.Action.NOTE_ADDED, new=f"message {message.pk}", at=now
    )
    request.updated_at = now
    request.save(update_fields=["updated_at"])
    return message
