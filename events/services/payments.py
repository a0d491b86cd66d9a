"""Stripe payments: the PaymentIntent of a held booking (created after the hold is committed, outside any
transaction) and verified Stripe events applied exactly once (`stripe_event_apply` and its handlers)."""

from __future__ import annotations

from datetime import datetime

from django.db import IntegrityError, transaction

from core.errors import Conflict, NotFound, ServiceUnavailable
from events import gateway, stripe_standin
from events.models import Booking, Event, StripeEvent
from events.services.common import _lock_booking, _notify, _now, _request_refund, _seats_release, _seats_reserve
from events.services.waitlist import _waitlist_promote
from loyalty.programmes.models import Membership


def booking_payment_start(*, membership: Membership, booking_id: int) -> gateway.PaymentIntentInfo:
    """The PaymentIntent of a held booking: created once (idempotency key from the booking), retrieved after.
    Runs outside any transaction: no lock is held while Stripe answers."""
    booking = Booking.objects.select_related("event").filter(pk=booking_id, membership=membership).first()
    if booking is None:
        raise NotFound(code="booking_not_found")
    if booking.status != Booking.Status.HELD or booking.payment_status not in (
        Booking.PaymentStatus.PENDING,
        Booking.PaymentStatus.FAILED,
    ):
        raise Conflict(f"A {booking.status} booking has nothing to pay.", code="booking_not_payable")
    if booking.payment_intent_id:
        return gateway.payment_intent_retrieve(payment_intent_id=booking.payment_intent_id)
    info = gateway.payment_intent_create(
        booking_id=booking.pk,
        event_id=booking.event_id,
        amount=booking.amount,
        currency=booking.currency,
        description=f"{booking.event.title} ({booking.seats} seat(s))",
    )
    Booking.objects.filter(pk=booking.pk, payment_intent_id__isnull=True).update(payment_intent_id=info.id)
    return info


def booking_payment_for_new_booking(*, membership: Membership, booking_id: int) -> gateway.PaymentIntentInfo | None:
    """The PaymentIntent to hand back with a just-created booking, or None when nothing is due (a free or
    waitlisted booking, or one paid, expired or cancelled meanwhile). Called after the booking committed, on
    the first execution of the request only. If Stripe does not answer, the 503 says the hold stands and how to
    pay it later."""
    try:
        return booking_payment_start(membership=membership, booking_id=booking_id)
    except Conflict:
        return None
    except ServiceUnavailable as exc:
        booking = Booking.objects.get(pk=booking_id)
        expires = booking.hold_expires_at.isoformat().replace("+00:00", "Z") if booking.hold_expires_at else ""
        raise ServiceUnavailable(
            f"Your booking {booking_id} is held until {expires}, but the payment provider did not answer in time. "
            f"Pay it with POST /api/v1/bookings/{booking_id}/payment (retry shortly); a retry of this request with "
            "the same Idempotency-Key answers the booking without payment details.",
            code=exc.code,
            fields={"booking_id": [str(booking_id)], "hold_expires_at": [expires]},
            retry_after=exc.retry_after,
        ) from exc


def booking_standin_pay(*, membership: Membership, booking_id: int) -> str:
    """Demos without Stripe: the member completes the payment of a held booking through the local stand-in.
    A `payment_intent.succeeded` event for the booking's stand-in PaymentIntent is applied through
    `stripe_event_apply`, the same path as Stripe's webhook. Refused unless the stand-in is active (no
    STRIPE_SECRET_KEY, not production). Returns the outcome (`confirmed`, `already_paid`, ...)."""
    if not gateway.standin_active():
        raise NotFound(
            "The local payment stand-in is off: payments go through Stripe.", code="payment_standin_disabled"
        )
    booking = Booking.objects.filter(pk=booking_id, membership=membership).first()
    if booking is None:
        raise NotFound(code="booking_not_found")
    if booking.status != Booking.Status.HELD or booking.payment_status not in (
        Booking.PaymentStatus.PENDING,
        Booking.PaymentStatus.FAILED,
    ):
        raise Conflict(f"A {booking.status} booking has nothing to pay.", code="booking_not_payable")
    if not stripe_standin.is_standin_intent(booking.payment_intent_id):
        booking_payment_start(membership=membership, booking_id=booking_id)
        booking.refresh_from_db()
    if not stripe_standin.is_standin_intent(booking.payment_intent_id):  # pragma: no cover - paid through Stripe
        raise Conflict("This booking's payment is not handled by the stand-in.", code="booking_not_payable")
    intent = stripe_standin.intent_object(
        booking.payment_intent_id,
        status="succeeded",
        amount=gateway.to_minor_units(booking.amount, booking.currency),
        currency=booking.currency,
        metadata={"booking_id": str(booking.pk), "event_id": str(booking.event_id)},
    )
    return stripe_event_apply(
        event_id=f"evt_standin_{booking.pk}_succeeded", event_type="payment_intent.succeeded", data_object=intent
    )


def _booking_for_intent(payment_intent_id: str | None, metadata: dict | None) -> int | None:
    if payment_intent_id:
        found = Booking.objects.filter(payment_intent_id=payment_intent_id).values_list("id", flat=True).first()
        if found:
            return found
    raw = (metadata or {}).get("booking_id")
    if raw and str(raw).isdigit():
        return Booking.objects.filter(pk=int(raw), payment_intent_id__isnull=True).values_list("id", flat=True).first()
    return None


def _cancel_for_payment(event: Event, booking: Booking, *, reason: str, now: datetime) -> None:
    held_seats = booking.status in Booking.SEAT_STATUSES
    booking.status = Booking.Status.CANCELLED
    booking.cancelled_at = now
    booking.cancel_reason = reason
    booking.save()
    if held_seats:
        _seats_release(event.pk, booking.seats)
        _waitlist_promote(event, now=now)


def _on_succeeded(event: Event, booking: Booking, obj: dict, now: datetime) -> str:
    if booking.payment_status in (Booking.PaymentStatus.REFUND_PENDING, Booking.PaymentStatus.REFUNDED):
        return "already_refunded"
    if booking.payment_status == Booking.PaymentStatus.PAID:
        return "already_paid"
    booking.payment_status = Booking.PaymentStatus.PAID
    booking.paid_at = now
    if booking.status == Booking.Status.HELD:
        booking.status = Booking.Status.CONFIRMED
        booking.confirmed_at = now
        booking.save()
        _notify(booking.pk, "confirmed")
        return "confirmed"
    late = (
        booking.status == Booking.Status.EXPIRED
        and event.status == Event.Status.PUBLISHED
        and now < (event.booking_closes_at or event.starts_at)
    )
    if late:
        try:
            with transaction.atomic():
                if _seats_reserve(event.pk, booking.seats):
                    booking.status = Booking.Status.CONFIRMED
                    booking.confirmed_at = now
                    booking.cancelled_at = None
                    booking.cancel_reason = ""
                    booking.save()
                    _notify(booking.pk, "confirmed")
                    return "late_confirmed"
        except IntegrityError:
            # The member booked the event again meanwhile: this payment is refunded instead.
            booking.refresh_from_db()
            booking.payment_status = Booking.PaymentStatus.PAID
            booking.paid_at = now
    _request_refund(booking, booking.amount)
    booking.save()
    return "refunded_no_seat"


def _on_failed(event: Event, booking: Booking, obj: dict, now: datetime) -> str:
    if booking.payment_status != Booking.PaymentStatus.PENDING:
        return "stale"
    booking.payment_status = Booking.PaymentStatus.FAILED
    booking.save(update_fields=["payment_status"])
    return "payment_failed"


def _on_canceled(event: Event, booking: Booking, obj: dict, now: datetime) -> str:
    if booking.payment_status not in (Booking.PaymentStatus.PENDING, Booking.PaymentStatus.FAILED):
        return "stale"
    if booking.status != Booking.Status.HELD:
        return "already_closed"
    _cancel_for_payment(event, booking, reason="payment_canceled", now=now)
    return "hold_released"


def _on_refunded(event: Event, booking: Booking, obj: dict, now: datetime) -> str:
    refunded = gateway.from_minor_units(int(obj.get("amount_refunded") or 0), booking.currency)
    refunded = min(refunded, booking.amount)
    booking.refunded_amount = max(booking.refunded_amount, refunded)
    full = booking.refunded_amount >= booking.amount
    if booking.payment_status == Booking.PaymentStatus.REFUND_PENDING and (
        full or booking.refunded_amount >= booking.refund_amount
    ):
        booking.payment_status = Booking.PaymentStatus.REFUNDED
    elif full:
        booking.payment_status = Booking.PaymentStatus.REFUNDED
        booking.refund_amount = booking.amount
    booking.paid_at = booking.paid_at or now
    if full and booking.status in (Booking.Status.HELD, Booking.Status.CONFIRMED, Booking.Status.WAITLISTED):
        # Refunded in full (e.g. from the Stripe dashboard): the booking no longer stands.
        _cancel_for_payment(event, booking, reason="refunded", now=now)
        return "refunded_cancelled"
    booking.save()
    return "refund_recorded"


HANDLERS = {
    "payment_intent.succeeded": _on_succeeded,
    "payment_intent.payment_failed": _on_failed,
    "payment_intent.canceled": _on_canceled,
    "charge.refunded": _on_refunded,
}


@transaction.atomic
def stripe_event_apply(*, event_id: str, event_type: str, data_object: dict, now: datetime | None = None) -> str:
    """Apply one verified Stripe event exactly once. The event id is stored in the same transaction as the
    change it causes; a duplicate (even a concurrent one) waits on the unique index and changes nothing."""
    now = _now(now)
    try:
        with transaction.atomic():
            record = StripeEvent.objects.create(event_id=event_id, type=event_type[:100])
    except IntegrityError:
        return "duplicate"
    handler = HANDLERS.get(event_type)
    if handler is None:
        outcome = "ignored"
    else:
        if event_type.startswith("payment_intent."):
            intent_id = data_object.get("id")
        else:
            intent_id = data_object.get("payment_intent")
        booking_id = _booking_for_intent(intent_id, data_object.get("metadata"))
        if booking_id is None:
            outcome = "unknown_payment_intent"
        else:
            event, booking = _lock_booking(booking_id)
            if not booking.payment_intent_id and intent_id:
                booking.payment_intent_id = intent_id
            outcome = handler(event, booking, data_object, now)
            if booking.payment_intent_id and outcome in {"stale", "already_closed"}:
                booking.save(update_fields=["payment_intent_id"])
            record.booking_id = booking_id
    record.outcome = outcome
    record.save(update_fields=["outcome", "booking"])
    return outcome
