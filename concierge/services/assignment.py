"""Assigning requests to agents. Two agents grabbing one request at once: one wins, the other gets a 409."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from accounts.models import Role, User
from accounts.services import user_has_role
from concierge.models import OPEN_STATUSES, ConciergeRequest, RequestEvent
from concierge.services.audit import event_write
from concierge.services.requests import request_locked
from core.errors import BusinessRuleError, Conflict, NotFound, ValidationFailed


def _agent(*, user_id: int | None, email: str | None) -> User:
    field = "assignee_id" if user_id is not None else "assignee_email"
    users = User.objects.filter(is_active=True)
    user = users.filter(pk=user_id).first() if user_id is not None else users.filter(email__iexact=email).first()
    if user is None or not user_has_role(user, Role.CONCIERGE_AGENT):
        raise BusinessRuleError(
            "The assignee must be an active concierge agent.",
            code="assignee_not_agent",
            fields={field: ["Not an active concierge agent."]},
        )
    return user


@transaction.atomic
def request_assign(
    *,
    request_id: int,
    actor: User,
    assignee_id: int | None = None,
    assignee_email: str | None = None,
    now: datetime | None = None,
) -> ConciergeRequest:
    """Assign an unassigned open request to the actor, or to the colleague named by `assignee_id` or
    `assignee_email` (as the agent directory lists them; not both). A conditional UPDATE decides the race:
    only the first of concurrent assignments finds `assignee IS NULL`; the others get 409 `already_assigned`.
    Assigning to the current assignee again changes nothing."""
    now = now or timezone.now()
    if assignee_id is not None and assignee_email:
        raise ValidationFailed(
            "Name the colleague by id or by email, not both.",
            fields={"assignee_email": ["Give assignee_id or assignee_email, not both."]},
        )
    email = (assignee_email or "").strip()
    to_self = (assignee_id is None and not email) or assignee_id == actor.pk or email.lower() == actor.email.lower()
    assignee = actor if to_self else _agent(user_id=assignee_id, email=email)
    taken = ConciergeRequest.objects.filter(pk=request_id, assignee__isnull=True, status__in=OPEN_STATUSES).update(
        assignee=assignee, updated_at=now
    )
    request = ConciergeRequest.objects.select_related("assignee").filter(pk=request_id).first()
    if request is None:
        raise NotFound("Concierge request not found.", code="request_not_found")
    if not taken:
        if request.assignee_id == assignee.pk:
            return request
        if request.status not in OPEN_STATUSES:
            raise Conflict("The request is closed.", code="request_closed", fields={"status": request.status})
        raise Conflict(
            "The request is already assigned; unassign it first.",
            code="already_assigned",
            fields={"assignee_id": request.assignee_id},
        )
    event_write(
        request=request, actor=actor, action=RequestEvent.Action.ASSIGNED, field="assignee", new=assignee.pk, at=now
    )
    return request


@transaction.atomic
def request_unassign(*, request_id: int, actor: User, now: datetime | None = None) -> ConciergeRequest:
    """Take the assignee off a request (409 `not_assigned` if nobody has it)."""
    now = now or timezone.now()
    request = request_locked(request_id=request_id)
    if request.assignee_id is None:
        raise Conflict("The request is not assigned.", code="not_assigned")
    old = request.assignee_id
    request.assignee, request.updated_at = None, now
    request.save(update_fields=["assignee", "updated_at"])
    event_write(request=request, actor=actor, action=RequestEvent.Action.UNASSIGNED, field="assignee", old=old, at=now)
    return request
