"""Helpers the events services share: the clock, seat accounting, the booking lock and the work handed to
tasks after commit (emails, refunds, PaymentIntent cancellations)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.db import connections
from django.db.models import F
from django.utils import timezone

from core.errors import NotFound
from core.outbox import enqueue
from core.rows import Statement
from events.models import Booking, Event


def _now(now: datetime | None) -> datetime:
    return now or timezone.now()


def _seats_reserve_sql(using: str) -> str:
    q = connections[using].ops.quote_name
    return (
        f"UPDATE {q(Event._meta.db_table)} SET {q('seats_booked')} = {q('seats_booked')} + %s "
        f"WHERE {q('id')} = %s AND {q('seats_booked')} <= {q('capacity')} - %s"
    )


_SEATS_RESERVE = Statement(_seats_reserve_sql, name="seats_reserve")


def _seats_reserve(event_id: int, seats: int) -> bool:
    """Take `seats` if they are free. One conditional UPDATE: safe under any concurrency (written once as SQL:
    every booking runs it)."""
    return _SEATS_RESERVE.execute([seats, event_id, seats]) == 1


def _seats_release(event_id: int, seats: int) -> None:
    updated = Event.objects.filter(pk=event_id, seats_booked__gte=seats).update(seats_booked=F("seats_booked") - seats)
    if not updated:  # pragma: no cover - would mean the seat accounting is broken
        raise RuntimeError(f"Event {event_id}: releasing {seats} seats would go below zero.")


def _lock_booking(booking_id: int) -> tuple[Event, Booking]:
    """Lock the booking's event, then the booking (the one locking order)."""
    event_id = Booking.objects.filter(pk=booking_id).values_list("event_id", flat=True).first()
    if event_id is None:
        raise NotFound(code="booking_not_found")
    event = Event.objects.select_for_update().get(pk=event_id)
    booking = Booking.objects.select_for_update().get(pk=booking_id)
    return event, booking


def _notify(booking_id: int, kind: str) -> None:
    enqueue("events.tasks.booking_notify", booking_id, kind)


def _request_refund(booking: Booking, amount: Decimal) -> None:
    """Decide a refund of `amount` for a paid booking; a task asks Stripe after commit."""
    if amount <= 0 or booking.payment_status != Booking.PaymentStatus.PAID:
        return
    booking.refund_amount = min(amount, booking.amount)
    booking.payment_status = Booking.PaymentStatus.REFUND_PENDING
    enqueue("events.tasks.booking_refund", booking.pk)


def _cancel_unpaid_intent(booking: Booking) -> None:
    if booking.payment_intent_id and booking.payment_status in (
        Booking.PaymentStatus.PENDING,
        Booking.PaymentStatus.FAILED,
    ):
        enqueue("events.tasks.booking_cancel_payment_intent", booking.pk)
