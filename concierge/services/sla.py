"""SLA breach detection and escalation, run periodically (concierge.tasks.sla_breaches_check).

Idempotent: a request is marked and escalated once per SLA (first response, resolution); the breach flag is
the guard, set in the same transaction as the priority raise and the audit rows. Rows another worker holds
are skipped (SKIP LOCKED on PostgreSQL), so two overlapping runs never escalate twice."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from concierge.models import OPEN_STATUSES, ConciergeRequest, RequestEvent
from core.outbox import enqueue

BATCH = 500

FIRST_RESPONSE = "first_response"
RESOLUTION = "resolution"


def _candidates(kind: str, now: datetime):
    qs = ConciergeRequest.objects.filter(status__in=OPEN_STATUSES)
    if kind == FIRST_RESPONSE:
        return qs.filter(first_response_at__isnull=True, first_response_breached=False, first_response_due_at__lt=now)
    return qs.filter(resolution_breached=False, resolution_due_at__lt=now)


def _mark_batch(kind: str, now: datetime) -> int:
    flag = f"{kind}_breached"
    with transaction.atomic():
        rows = list(
            _candidates(kind, now)
            .select_for_update(skip_locked=True)
            .order_by("id")
            .values_list("id", "priority")[:BATCH]
        )
        if not rows:
            return 0
        ids = [row[0] for row in rows]
        ConciergeRequest.objects.filter(id__in=ids).update(
            **{flag: True}, priority=F("priority") + 1, escalated_at=now, updated_at=now
        )
        events = []
        for request_id, priority in rows:
            events.append(
                RequestEvent(
                    request_id=request_id,
                    action=RequestEvent.Action.BREACHED,
                    field=flag,
                    old_value="False",
                    new_value="True",
                    note=f"{kind.replace('_', ' ')} SLA missed",
                    at=now,
                )
            )
            events.append(
                RequestEvent(
                    request_id=request_id,
                    action=RequestEvent.Action.PRIORITY_CHANGED,
                    field="priority",
                    old_value=str(priority),
                    new_value=str(priority + 1),
                    note="escalated",
                    at=now,
                )
            )
            enqueue("concierge.tasks.notify_escalation", request_id, kind)
        RequestEvent.objects.bulk_create(events)
    return len(rows)


def sla_breaches_mark(*, now: datetime | None = None) -> dict[str, int]:
    """Mark every open request past a due time as breached and escalate it (priority + 1, the assignee or the
    lead is emailed). Returns how many requests were newly marked per SLA; a second run marks none."""
    now = now or timezone.now()
    counts = {FIRST_RESPONSE: 0, RESOLUTION: 0}
    for kind in (FIRST_RESPONSE, RESOLUTION):
        while True:
            marked = _mark_batch(kind, now)
            counts[kind] += marked
            if marked < BATCH:
                break
    return counts
