"""Completing ended events: the check-in grace after an event's end and the periodic, set-based sweep that
closes events past it (no-shows, leftover holds and waitlists)."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, OuterRef, Subquery, Sum
from django.db.models.functions import Coalesce

from core.outbox import enqueue
from events.models import Booking, Event
from events.services.common import _notify, _now

DEFAULT_COMPLETION_GRACE_HOURS = 2


def completion_grace() -> timedelta:
    """How long after its end an event stays open for check-in before it is completed."""
    return timedelta(hours=float(getattr(settings, "EVENT_COMPLETION_GRACE_HOURS", DEFAULT_COMPLETION_GRACE_HOURS)))


def events_complete(*, now: datetime | None = None, batch: int = 500) -> dict[str, int]:
    """Close published events that ended more than `completion_grace()` ago, set-based, `batch` events per
    transaction: the event becomes `completed`; confirmed bookings nobody checked in become `no_show`;
    remaining holds expire (their PaymentIntents are cancelled, their seats freed) and waitlisted bookings
    are cancelled (reason `event_completed`) and their members are told by email after commit (the event has
    taken place, their waitlist place is closed); a held or waitlisted booking that was somehow paid is refunded
    in full through the usual refund task. Attended bookings are left alone. Idempotent: a completed event is
    never touched again, so a second run (or a concurrent one, which waits on the event locks) changes
    nothing."""
    now = _now(now)
    cutoff = now - completion_grace()
    totals = {"events": 0, "no_show": 0, "holds_expired": 0, "waitlist_cancelled": 0, "refunds": 0}
    while True:
        with transaction.atomic():
            # Lock the events first (the one locking order: event rows, then booking rows).
            event_ids = list(
                Event.objects.select_for_update()
                .filter(status=Event.Status.PUBLISHED, ends_at__lte=cutoff)
                .order_by("id")
                .values_list("id", flat=True)[:batch]
            )
            if not event_ids:
                return totals
            bookings = Booking.objects.filter(event_id__in=event_ids)
            unsettled = (Booking.Status.HELD, Booking.Status.WAITLISTED)
            paid_ids = list(
                bookings.filter(status__in=unsettled, payment_status=Booking.PaymentStatus.PAID).values_list(
                    "id", flat=True
                )
            )
            open_intent_ids = list(
                bookings.filter(
                    status=Booking.Status.HELD,
                    payment_intent_id__isnull=False,
                    payment_status__in=(Booking.PaymentStatus.PENDING, Booking.PaymentStatus.FAILED),
                ).values_list("id", flat=True)
            )
            # The same bookings the UPDATE below cancels: existing bookings change only under their event's lock
            # and booking closed before the event started, so none join the waitlist now.
            waitlisted_ids = list(
                bookings.filter(status=Booking.Status.WAITLISTED).order_by("id").values_list("id", flat=True)
            )
            if paid_ids:
                Booking.objects.filter(pk__in=paid_ids).update(
                    refund_amount=F("amount"), payment_status=Booking.PaymentStatus.REFUND_PENDING
                )
            closed = {"cancelled_at": now, "cancel_reason": "event_completed"}
            totals["no_show"] += bookings.filter(status=Booking.Status.CONFIRMED).update(status=Booking.Status.NO_SHOW)
            totals["holds_expired"] += bookings.filter(status=Booking.Status.HELD).update(
                status=Booking.Status.EXPIRED, **closed
            )
            totals["waitlist_cancelled"] += bookings.filter(status=Booking.Status.WAITLISTED).update(
                status=Booking.Status.CANCELLED, **closed
            )
            seats = (
                Booking.objects.filter(event_id=OuterRef("pk"), status__in=Booking.SEAT_STATUSES)
                .order_by()
                .values("event_id")
                .annotate(total=Sum("seats"))
                .values("total")
            )
            totals["events"] += Event.objects.filter(pk__in=event_ids).update(
                status=Event.Status.COMPLETED,
                completed_at=now,
                updated_at=now,
                seats_booked=Coalesce(Subquery(seats), 0),
            )
            for booking_id in open_intent_ids:
                enqueue("events.tasks.booking_cancel_payment_intent", booking_id)
            for booking_id in paid_ids:
                enqueue("events.tasks.booking_refund", booking_id)
            for booking_id in waitlisted_ids:
                _notify(booking_id, "waitlist_closed")
            totals["refunds"] += len(paid_ids)
