"""The waitlist and holds: freed seats go to waitlisted bookings (best tier first, then earliest); unpaid holds
expire and give their seats back."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction

from events.models import Booking, Event
from events.services.common import (
    _cancel_unpaid_intent,
    _lock_booking,
    _notify,
    _now,
    _seats_release,
    _seats_reserve,
)

PROMOTION_HOLD_HOURS = 12


def _waitlist_promote(event: Event, *, now: datetime) -> list[int]:
    """Give freed seats to waitlisted bookings, best tier first, then earliest; strictly in that order (the
    first one that does not fit stops promotion). The caller holds the event's row lock."""
    event.refresh_from_db()
    if event.status != Event.Status.PUBLISHED or now >= (event.booking_closes_at or event.starts_at):
        return []
    promoted: list[int] = []
    while True:
        waiting = list(
            Booking.objects.select_for_update()
            .filter(event=event, status=Booking.Status.WAITLISTED)
            .order_by("-tier_rank", "created_at", "id")[:50]
        )
        if not waiting:
            break
        for booking in waiting:
            if not _seats_reserve(event.pk, booking.seats):
                return promoted
            if event.is_paid:
                booking.status = Booking.Status.HELD
                booking.hold_expires_at = min(
                    now + timedelta(hours=PROMOTION_HOLD_HOURS), event.booking_closes_at or event.starts_at
                )
                booking.payment_status = Booking.PaymentStatus.PENDING
                _notify(booking.pk, "waitlist_hold")
            else:
                booking.status = Booking.Status.CONFIRMED
                booking.confirmed_at = now
                _notify(booking.pk, "waitlist_confirmed")
            booking.save(update_fields=["status", "hold_expires_at", "payment_status", "confirmed_at"])
            promoted.append(booking.pk)
    return promoted


@transaction.atomic
def waitlist_promote(*, event_id: int, now: datetime | None = None) -> list[int]:
    event = Event.objects.select_for_update().filter(pk=event_id).first()
    if event is None:
        return []
    return _waitlist_promote(event, now=_now(now))


def holds_expire(*, now: datetime | None = None, batch: int = 200) -> int:
    """Expire unpaid holds past their expiry: seats return and the waitlist moves up. Safe to run
    concurrently and repeatedly (each booking is re-checked under its lock)."""
    now = _now(now)
    expired = 0
    ids = list(
        Booking.objects.filter(status=Booking.Status.HELD, hold_expires_at__lte=now)
        .order_by("hold_expires_at")
        .values_list("id", flat=True)[:batch]
    )
    for booking_id in ids:
        with transaction.atomic():
            event, booking = _lock_booking(booking_id)
            if booking.status != Booking.Status.HELD or booking.hold_expires_at > now:
                continue
            booking.status = Booking.Status.EXPIRED
            booking.cancelled_at = now
            booking.cancel_reason = "hold_expired"
            _cancel_unpaid_intent(booking)
            booking.save(update_fields=["status", "cancelled_at", "cancel_reason"])
            _seats_release(event.pk, booking.seats)
            _waitlist_promote(event, now=now)
            expired += 1
    return expired
