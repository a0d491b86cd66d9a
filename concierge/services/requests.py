"""Concierge requests: creation (tier SLAs, monthly allowance), the state machine, member cancel and rating."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from django.db import connection, connections, transaction
from django.utils import timezone

from concierge.models import (
    CLOSED_STATUSES,
    OPEN_STATUSES,
    RESOLVED_STATUSES,
    AllowanceUsage,
    ConciergeRequest,
    RequestEvent,
    RequestStatus,
)
from concierge.services.audit import event_write
from core.errors import BusinessRuleError, Conflict, NotFound, PermissionDenied, ValidationFailed
from core.outbox import enqueue
from core.rows import Statement
from loyalty.ingestion.services.interactions import interaction_record
from loyalty.programmes.models import Membership
from loyalty.programmes.selectors.members import NOT_A_MEMBER, effective_tier, member_membership

S = RequestStatus

# The state machine. Everything not listed here is refused with 409 `invalid_transition`.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    S.NEW: (S.ACKNOWLEDGED, S.DECLINED, S.CANCELLED),
    S.ACKNOWLEDGED: (S.IN_PROGRESS, S.DECLINED, S.CANCELLED),
    S.IN_PROGRESS: (S.AWAITING_MEMBER, S.FULFILLED, S.DECLINED, S.CANCELLED),
    S.AWAITING_MEMBER: (S.IN_PROGRESS, S.FULFILLED, S.DECLINED, S.CANCELLED),
    S.FULFILLED: (),
    S.DECLINED: (),
    S.CANCELLED: (),
}

# Status changes the member is told about by email.
NOTIFY_ON_STATUS = (S.ACKNOWLEDGED, S.FULFILLED)


def month_start(moment: datetime) -> date:
    moment = moment.astimezone(UTC)
    return date(moment.year, moment.month, 1)


def allowance_resets_at(moment: datetime) -> datetime:
    start = month_start(moment)
    nxt = date(start.year + (start.month == 12), start.month % 12 + 1, 1)
    return datetime(nxt.year, nxt.month, nxt.day, tzinfo=UTC)


def _allowance_take_sql(using: str) -> str:
    """This month's counter of a membership: created at 1, or incremented while below the allowance, in one
    upsert (the conflicting row is locked and its `used` re-checked, so concurrent creates never exceed the
    allowance); no row comes back when the allowance is used up. Only for an allowance of at least 1."""
    q = connections[using].ops.quote_name
    table = q(AllowanceUsage._meta.db_table)
    return (
        f"INSERT INTO {table} ({q('membership_id')}, {q('period')}, {q('used')}) VALUES (%s, %s, 1) "
        f"ON CONFLICT ({q('membership_id')}, {q('period')}) DO UPDATE SET {q('used')} = {table}.{q('used')} + 1 "
        f"WHERE {table}.{q('used')} < %s RETURNING {q('used')}"
    )


_ALLOWANCE_TAKE = Statement(_allowance_take_sql, name="concierge_allowance_take")


def _allowance_consume(*, membership, allowance: int, now: datetime) -> None:
    """Take one request from this month's allowance, or 400 `allowance_exhausted`. Must run inside the
    transaction that creates the request: the upsert locks the counter row until commit, and a concurrent
    create re-checks `used < allowance` against the committed value."""
    period = month_start(now)
    taken = allowance > 0 and _ALLOWANCE_TAKE.fetchone(
        [membership.pk, connection.ops.adapt_datefield_value(period), allowance]
    )
    if not taken:
        used = AllowanceUsage.objects.filter(membership=membership, period=period).values_list("used", flat=True)
        resets_at = allowance_resets_at(now)
        raise BusinessRuleError(
            f"You have used your {allowance} concierge requests for this month. "
            f"Your allowance resets at {resets_at.isoformat()}.",
            code="allowance_exhausted",
            fields={"allowance": allowance, "used": (list(used) or [0])[0], "resets_at": resets_at.isoformat()},
        )


def request_create(
    *,
    user,
    category: str,
    subject: str,
    details: str = "",
    visibility: str = "private",
    now: datetime | None = None,
    membership: Membership | None = None,
) -> ConciergeRequest:
    """A member's new request. 403 for anyone without an active treatment membership (control-group and ended
    memberships included); 400 `allowance_exhausted` past the tier's monthly allowance. `membership`: the
    user's active treatment membership when the caller resolved it already (the request's member context);
    else it is looked up."""
    now = now or timezone.now()
    if membership is None:
        membership = member_membership(user)
    elif membership.customer.user_id != user.pk or membership.group != Membership.Group.TREATMENT:
        raise PermissionDenied("You have no active programme membership.", code=NOT_A_MEMBER)
    tier = effective_tier(membership, now=now)
    if tier is None:
        raise PermissionDenied("Your membership has no tier with concierge benefits.", code="no_tier")
    subject = subject.strip()
    if not subject:
        raise ValidationFailed("The subject is empty.", fields={"subject": ["Must not be blank."]})
    with transaction.atomic():
        _allowance_consume(membership=membership, allowance=tier.monthly_request_allowance, now=now)
        first_due = now + timedelta(hours=tier.first_response_sla_hours)
        request = ConciergeRequest.objects.create(
            membership=membership,
            tier=tier,
            category=category,
            subject=subject,
            details=details,
            visibility=visibility,
            status=S.NEW,
            priority=tier.rank,
            created_at=now,
            updated_at=now,
            first_response_due_at=first_due,
            resolution_due_at=now + timedelta(hours=tier.resolution_sla_hours),
            due_at=first_due,
        )
        event_write(request=request, actor=user, action=RequestEvent.Action.CREATED, field="status", new=S.NEW, at=now)
        interaction_record(
            customer=membership.customer,
            channel="concierge",
            kind="request_created",
            occurred_at=now,
            external_id=f"concierge-request-{request.pk}",
        )
    return request


def _locked(queryset, request_id: int) -> ConciergeRequest:
    request = queryset.select_for_update(of=("self",)).filter(pk=request_id).first()
    if request is None:
        raise NotFound("Concierge request not found.", code="request_not_found")
    return request


def member_request_locked(*, user, request_id: int) -> ConciergeRequest:
    """The user's own request, row-locked; another member's request is a 404 (as if it did not exist)."""
    return _locked(ConciergeRequest.objects.filter(membership__customer__user=user), request_id)


def request_locked(*, request_id: int) -> ConciergeRequest:
    return _locked(ConciergeRequest.objects.all(), request_id)


def status_apply(
    *, request: ConciergeRequest, actor, to_status: str, now: datetime, note: str = "", notify: bool = True
) -> None:
    """Move a locked request to `to_status` if the state machine allows it, with its audit row. The member is
    emailed about the statuses in NOTIFY_ON_STATUS unless `notify` is false (the caller tells them itself)."""
    old = request.status
    if to_status not in TRANSITIONS.get(old, ()):
        raise Conflict(
            f"A request cannot go from {old} to {to_status}.",
            code="invalid_transition",
            fields={"from": old, "to": to_status, "allowed": list(TRANSITIONS.get(old, ()))},
        )
    request.status = to_status
    request.updated_at = now
    if to_status in CLOSED_STATUSES:
        request.closed_at = now
        request.due_at = None
    if to_status in RESOLVED_STATUSES:
        request.resolved_at = now
        if now > request.resolution_due_at:
            request.resolution_breached = True
    request.save(
        update_fields=[
            "status",
            "updated_at",
            "closed_at",
            "due_at",
            "resolved_at",
            "resolution_breached",
        ]
    )
    event = event_write(
        request=request,
        actor=actor,
        action=RequestEvent.Action.STATUS_CHANGED,
        field="status",
        old=old,
        new=to_status,
        note=note,
        at=now,
    )
    if notify and to_status in NOTIFY_ON_STATUS:
        enqueue("concierge.tasks.notify_member", event.pk)


@transaction.atomic
def request_transition(*, request_id: int, actor, to_status: str, note: str = "", now: datetime | None = None):
    """An agent moves a request through the state machine; anything not allowed is 409 `invalid_transition`."""
    now = now or timezone.now()
    request = request_locked(request_id=request_id)
    status_apply(request=request, actor=actor, to_status=to_status, now=now, note=note)
    return request


@transaction.atomic
def request_cancel(*, request_id: int, user, now: datetime | None = None) -> ConciergeRequest:
    """The member cancels their own open request."""
    now = now or timezone.now()
    request = member_request_locked(user=user, request_id=request_id)
    status_apply(request=request, actor=user, to_status=S.CANCELLED, now=now, note="Cancelled by the member.")
    return request


@transaction.atomic
def request_rate(
    *, request_id: int, user, rating: int, comment: str = "", now: datetime | None = None
) -> ConciergeRequest:
    """The member rates a fulfilled or declined request, once (1-5)."""
    now = now or timezone.now()
    if not 1 <= rating <= 5:
        raise ValidationFailed("The rating is from 1 to 5.", fields={"rating": ["Must be from 1 to 5."]})
    request = member_request_locked(user=user, request_id=request_id)
    if request.status not in RESOLVED_STATUSES:
        raise Conflict(
            "Only a fulfilled or declined request can be rated.",
            code="request_not_rateable",
            fields={"status": request.status},
        )
    if request.rating is not None:
        raise Conflict("This request is already rated.", code="already_rated", fields={"rating": request.rating})
    request.rating, request.rating_comment, request.rated_at, request.updated_at = rating, comment, now, now
    request.save(update_fields=["rating", "rating_comment", "rated_at", "updated_at"])
    event_write(request=request, actor=user, action=RequestEvent.Action.RATED, field="rating", new=rating, at=now)
    interaction_record(
        customer=request.membership.customer,
        channel="concierge",
        kind="request_rated",
        occurred_at=now,
        external_id=f"concierge-rating-{request.pk}",
    )
    return request


__all__ = [
    "OPEN_STATUSES",
    "TRANSITIONS",
    "request_cancel",
    "request_create",
    "request_rate",
    "request_transition",
]
