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
from core.errors import BusinessRuleError, Conflict, NotFound


def _agent(user_id: int) -> User:
    user = User.objects.filter(pk=user_id, is_active=True).first()
    if user is None or not user_has_role(user, Role.CONCIERGE_AGENT):
        raise BusinessRuleError(
            "The assignee must be an active concierge agent.",
            code="assignee_not_agent",
            fields={"assignee_id": ["Not an active concierge agent."]},
        )
    return user


@transaction.atomic
def request_assign(
    *, request_id: int, actor: User, assignee_id: int | None = None, now: datetime | None = None
) -> ConciergeRequest:
    """Assign an unassigned open request (to the actor by default). A conditional UPDATE decides the race:
    only the first of concurrent assignments finds `assignee IS NULL`; the others get 409 `already_assigned`.
    Assigning to the current assignee again changes nothing."""
    now = now or timezone.now()
    assignee = actor if assignee_id is None or assignee_id == actor.pk else _agent(assignee_id)
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
