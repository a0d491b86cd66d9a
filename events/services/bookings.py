"""Member bookings: the booking window of a tier, booking (confirmed, held until paid, or waitlisted) and
cancelling with the event's refund rule."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db import IntegrityError, connections, transaction

from core.errors import BusinessRuleError, Conflict, NotFound, PermissionDenied
from core.rows import Columns, Statement
from events.models import Booking, Event
from events.selectors import member_event_tier_check
from events.services.common import (
    _cancel_unpaid_intent,
    _lock_booking,
    _notify,
    _now,
    _request_refund,
    _seats_release,
    _seats_reserve,
)
from events.services.waitlist import _waitlist_promote
from loyalty.programmes.models import Membership
from loyalty.programmes.selectors.members import NOT_A_MEMBER, effective_tier

HOLD_MINUTES = 15


def booking_window(event: Event, *, early_access_hours: int) -> tuple[datetime, datetime]:
    """When a member with this tier benefit may book: [opens, closes)."""
    opens = event.booking_opens_at - timedelta(hours=early_access_hours)
    closes = event.booking_closes_at or event.starts_at
    return opens, closes


def _member_tier(membership: Membership, now: datetime):
    tier = effective_tier(membership, now=now)
    if tier is None or membership.group != Membership.Group.TREATMENT:
        raise PermissionDenied("You have no active programme membership.", code=NOT_A_MEMBER)
    return tier


def _event_for_booking_sql(using: str) -> str:
    q = connections[using].ops.quote_name
    live = ", ".join(["%s"] * len(Booking.LIVE_STATUSES))
    return (
        f"SELECT {_EVENT.sql(using)}, EXISTS(SELECT 1 FROM {q(Booking._meta.db_table)} b "
        f"WHERE b.{q('event_id')} = e.{q('id')} AND b.{q('membership_id')} = %s AND b.{q('status')} IN ({live})) "
        f"FROM {q(Event._meta.db_table)} e WHERE e.{q('id')} = %s AND e.{q('status')} = %s"
    )


_EVENT = Columns(Event, "e")
_EVENT_FOR_BOOKING = Statement(
    _event_for_booking_sql, name="event_for_booking"
)  # every booking runs it: written once as SQL (core.rows)


@transaction.atomic
def booking_create(
    *, membership: Membership, event_id: int, guests: int = 0, join_waitlist: bool = False, now: datetime | None = None
) -> Booking:
    """Book the member (plus guests) on an event. Free: confirmed, and the confirmation email goes out after
    commit. Paid: held for HOLD_MINUTES until paid (the PaymentIntent is created after commit by
    `booking_payment_start`; the email goes out when the payment succeeds). Full: waitlisted if asked, else 409
    `event_full`."""
    now = _now(now)
    tier = _member_tier(membership, now)
    # The event and whether the member already has a live booking on it: one query.
    row = _EVENT_FOR_BOOKING.fetchone([membership.pk, *Booking.LIVE_STATUSES, event_id, Event.Status.PUBLISHED])
    if row is None:
        raise NotFound(code="event_not_found")
    event = _EVENT.load(row)
    event.already = bool(row[_EVENT.width])
    member_event_tier_check(tier=tier, min_tier_rank=event.min_tier_rank)
    opens, closes = booking_window(event, early_access_hours=tier.early_access_hours)
    if now < opens:
        raise BusinessRuleError(
            "Booking is not open yet for your tier.",
            code="booking_not_open",
            fields={"opens_at": [opens.isoformat()]},
        )
    if now >= closes:
        raise BusinessRuleError("Booking for this event has closed.", code="booking_closed")
    if guests > tier.guests_per_booking:
        raise BusinessRuleError(
            f"Your tier allows {tier.guests_per_booking} guest(s) per booking.",
            code="too_many_guests",
            fields={"guests": [f"At most {tier.guests_per_booking}."]},
        )
    if event.already:
        raise Conflict("You already have a booking for this event.", code="already_booked")
    seats = 1 + guests
    values: dict[str, Any] = {
        "event_id": event.pk,
        "membership": membership,
        "seats": seats,
        "tier_rank": tier.rank,
        "created_at": now,
        "currency": event.currency,
        "amount": event.price * seats,
    }
    if _seats_reserve(event.pk, seats):
        if event.is_paid:
            values.update(
                status=Booking.Status.HELD,
                hold_expires_at=now + timedelta(minutes=HOLD_MINUTES),
                payment_status=Booking.PaymentStatus.PENDING,
            )
        else:
            values.update(status=Booking.Status.CONFIRMED, confirmed_at=now)
    elif join_waitlist:
        values.update(status=Booking.Status.WAITLISTED)
    else:
        raise Conflict(
            "The event is full. You may join the waitlist.",
            code="event_full",
            fields={"seats_left": [str(Event.objects.get(pk=event.pk).seats_left)]},
        )
    if event.is_paid and values["status"] == Booking.Status.WAITLISTED:
        values["payment_status"] = Booking.PaymentStatus.PENDING
    try:
        # No savepoint of its own: the error leaves this function at once, and this function's atomic block
        # rolls back (to its savepoint when nested), seats reserved above included.
        booking = Booking.objects.create(**values)
    except IntegrityError as exc:
        # A concurrent request of the same member won the one-live-booking constraint.
        raise Conflict("You already have a booking for this event.", code="already_booked") from exc
    booking.event = event
    if booking.status == Booking.Status.CONFIRMED:
        _notify(booking.pk, "confirmed")
    return booking


def _refund_due(booking: Booking, event: Event, now: datetime) -> Decimal:
    if now <= event.starts_at - timedelta(hours=event.full_refund_hours):
        return booking.amount
    percent = Decimal(event.late_refund_percent) / Decimal(100)
    return (booking.amount * percent).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


@transaction.atomic
def booking_cancel(*, membership: Membership, booking_id: int, now: datetime | None = None) -> Booking:
    """The member cancels their booking: seats return (and promote the waitlist), a paid booking is refunded
    by the event's rule (in full until `full_refund_hours` before the start, `late_refund_percent` after)."""
    now = _now(now)
    if not Booking.objects.filter(pk=booking_id, membership=membership).exists():
        raise NotFound(code="booking_not_found")
    event, booking = _lock_booking(booking_id)
    if booking.status not in (Booking.Status.HELD, Booking.Status.CONFIRMED, Booking.Status.WAITLISTED):
        raise Conflict(f"A {booking.status} booking cannot be cancelled.", code="booking_not_cancellable")
    if now >= event.starts_at:
        raise BusinessRuleError("The event has already started.", code="event_started")
    held_seats = booking.status in Booking.SEAT_STATUSES
    booking.status = Booking.Status.CANCELLED
    booking.cancelled_at = now
    booking.cancel_reason = "member"
    _cancel_unpaid_intent(booking)
    _request_refund(booking, _refund_due(booking, event, now))
    booking.save()
    if held_seats:
        _seats_release(event.pk, booking.seats)
        _waitlist_promote(event, now=now)
    return booking
