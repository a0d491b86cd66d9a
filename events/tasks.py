"""Celery tasks of the events app. They take ids, re-read state and are safe to run twice (Stripe calls carry
idempotency keys derived from the booking; state is re-checked before and after)."""

from __future__ import annotations

import logging

import stripe
from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from core.schemas import money_str
from events import gateway
from events.models import Booking
from loyalty.customers.contact import contact_email

logger = logging.getLogger("premier.events")


@shared_task
def expire_holds() -> int:
    """Periodic: expire unpaid holds, free their seats, promote the waitlist."""
    from events.services.waitlist import holds_expire

    return holds_expire()


@shared_task
def complete_ended_events() -> dict[str, int]:
    """Periodic: complete published events past their end plus the check-in grace; mark no-shows, close
    leftover holds and waitlists. Set-based and idempotent."""
    from events.services.completion import events_complete

    totals = events_complete()
    if totals["events"]:
        logger.info("Completed ended events: %s", totals)
    return totals


@shared_task
def settle_pending_payments() -> int:
    """Periodic: retry refunds that were decided but not yet accepted by Stripe (e.g. Stripe was down)."""
    pending = Booking.objects.filter(payment_status=Booking.PaymentStatus.REFUND_PENDING, refund_id="")
    done = 0
    for booking_id in pending.values_list("id", flat=True)[:200]:
        done += int(booking_refund(booking_id) == "requested")
    return done


@shared_task
def booking_refund(booking_id: int) -> str:
    booking = Booking.objects.filter(pk=booking_id).first()
    if booking is None or booking.payment_status != Booking.PaymentStatus.REFUND_PENDING or booking.refund_id:
        return "nothing_to_do"
    if not booking.payment_intent_id or booking.refund_amount <= 0:
        return "nothing_to_do"
    try:
        refund_id, status = gateway.refund_create(
            booking_id=booking.pk,
            payment_intent_id=booking.payment_intent_id,
            amount=booking.refund_amount,
            currency=booking.currency,
        )
    except stripe.StripeError:
        logger.exception("Refund of booking %s failed; settle_pending_payments retries it", booking_id)
        return "failed"
    with transaction.atomic():
        booking = Booking.objects.select_for_update().get(pk=booking_id)
        booking.refund_id = refund_id
        fields = ["refund_id"]
        if status == "succeeded" and booking.payment_status == Booking.PaymentStatus.REFUND_PENDING:
            booking.payment_status = Booking.PaymentStatus.REFUNDED
            booking.refunded_amount = max(booking.refunded_amount, booking.refund_amount)
            fields += ["payment_status", "refunded_amount"]
        booking.save(update_fields=fields)
    return "requested"


@shared_task
def booking_cancel_payment_intent(booking_id: int) -> str:
    booking = Booking.objects.filter(pk=booking_id).first()
    if booking is None or not booking.payment_intent_id:
        return "nothing_to_do"
    if booking.payment_status not in (Booking.PaymentStatus.PENDING, Booking.PaymentStatus.FAILED):
        return "nothing_to_do"
    try:
        return gateway.payment_intent_cancel(booking_id=booking.pk, payment_intent_id=booking.payment_intent_id)
    except stripe.StripeError:
        # The PaymentIntent stays open; if it is paid later, the webhook confirms or refunds it.
        logger.exception("Cancelling the PaymentIntent of booking %s failed", booking_id)
        return "failed"


MESSAGES = {
    "event_cancelled": (
        "Event cancelled: {title}",
        "We are sorry: {title} on {starts} has been cancelled. Your booking is cancelled{refund}.",
    ),
    "confirmed": (
        "Booking confirmed: {title}",
        "Your booking for {title} on {starts}{venue} is confirmed ({seats} seat(s)){paid}. We look forward to "
        "seeing you.",
    ),
    "waitlist_confirmed": (
        "You're in: {title}",
        "A seat opened up. Your booking for {title} on {starts}{venue} is confirmed ({seats} seat(s)){paid}.",
    ),
    "waitlist_closed": (
        "Waitlist closed: {title}",
        "{title} on {starts} has now taken place. No seat became free for you, so your place on the waitlist "
        "is closed{refund}. We hope to see you at another event.",
    ),
    "waitlist_hold": (
        "A seat is held for you: {title}",
        "A seat opened up for {title} on {starts}. It is held for you until {expires}: pay in the app to "
        "confirm it ({seats} seat(s), {amount} {currency}).",
    ),
}


# Emails that confirm a booking: each booking gets one of them, once (`Booking.confirmation_emailed_at`).
CONFIRMATIONS = ("confirmed", "waitlist_confirmed")


@shared_task
def booking_notify(booking_id: int, kind: str) -> bool:
    """Email the member about their booking, at their one contact address. A confirmation goes out once per
    booking, whatever the number of runs (the stamp and the send share a transaction: a failed send is
    retried), and only while the booking stands."""
    booking = Booking.objects.select_related("event", "membership").filter(pk=booking_id).first()
    if booking is None or kind not in MESSAGES:
        return False
    if kind in CONFIRMATIONS and booking.status not in (Booking.Status.CONFIRMED, Booking.Status.ATTENDED):
        return False
    recipient = contact_email(booking.membership.customer_id)
    if not recipient:
        return False
    subject, body = MESSAGES[kind]
    values = {
        "title": booking.event.title,
        "starts": booking.event.starts_at.strftime("%Y-%m-%d %H:%M UTC"),
        "venue": f" at {booking.event.venue}" if booking.event.venue else "",
        "seats": booking.seats,
        "amount": money_str(booking.amount),
        "currency": booking.currency,
        "paid": f", paid {money_str(booking.amount)} {booking.currency}" if booking.paid_at else "",
        "expires": booking.hold_expires_at.strftime("%Y-%m-%d %H:%M UTC") if booking.hold_expires_at else "",
        "refund": " and your payment will be refunded in full" if booking.amount > 0 and booking.paid_at else "",
    }
    message = (subject.format(**values), body.format(**values), settings.DEFAULT_FROM_EMAIL, [recipient])
    if kind not in CONFIRMATIONS:
        send_mail(*message)
        return True
    with transaction.atomic():
        # The conditional UPDATE is the guard: a concurrent run waits on the row and then finds it stamped.
        if not Booking.objects.filter(pk=booking_id, confirmation_emailed_at__isnull=True).update(
            confirmation_emailed_at=timezone.now()
        ):
            return False
        send_mail(*message)
    return True
