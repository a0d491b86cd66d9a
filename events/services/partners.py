"""What partner staff do: the staff link, event create/update/publish/cancel, and check-in."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.db.models.functions import Coalesce

from accounts.models import User
from core.errors import BusinessRuleError, Conflict, NotFound, PermissionDenied, ValidationFailed
from events.models import Booking, Event, Partner, PartnerStaff
from events.services.common import _cancel_unpaid_intent, _lock_booking, _notify, _now, _request_refund
from events.services.completion import completion_grace
from events.services.waitlist import _waitlist_promote
from loyalty.customers.models import Channel
from loyalty.programmes.models import Membership

DEFAULT_CHECKIN_OPENS_HOURS = 2

EDITABLE_FIELDS = (
    "title",
    "description",
    "venue",
    "starts_at",
    "ends_at",
    "capacity",
    "min_tier_rank",
    "price",
    "currency",
    "booking_opens_at",
    "booking_closes_at",
    "full_refund_hours",
    "late_refund_percent",
)


def partner_for_user(user: User) -> Partner:
    """The partner this staff user works for; 403 `no_partner` if the user is linked to none."""
    link = PartnerStaff.objects.select_related("partner").filter(user=user).first()
    if link is None:
        raise PermissionDenied("Your account is not linked to a partner.", code="no_partner")
    return link.partner


@transaction.atomic
def partner_staff_link(*, user: User, partner: Partner) -> PartnerStaff:
    link, _ = PartnerStaff.objects.update_or_create(user=user, defaults={"partner": partner})
    return link


def _validate_event_fields(values: dict[str, Any]) -> None:
    errors: dict[str, list[str]] = {}
    if values["ends_at"] <= values["starts_at"]:
        errors["ends_at"] = ["Must be after starts_at."]
    if values["booking_opens_at"] >= values["starts_at"]:
        errors["booking_opens_at"] = ["Must be before starts_at."]
    closes = values.get("booking_closes_at")
    if closes is not None and not (values["booking_opens_at"] < closes <= values["starts_at"]):
        errors["booking_closes_at"] = ["Must be after booking_opens_at and no later than starts_at."]
    if values["price"] < 0:
        errors["price"] = ["Must not be negative."]
    if values["late_refund_percent"] > 100:
        errors["late_refund_percent"] = ["At most 100."]
    if errors:
        raise ValidationFailed("The event is not valid.", code="invalid_event", fields=errors)


def _partner_event_locked(partner: Partner, event_id: int) -> Event:
    event = Event.objects.select_for_update().filter(pk=event_id, partner=partner).first()
    if event is None:
        raise NotFound(code="event_not_found")
    return event


@transaction.atomic
def event_create(*, partner: Partner, created_by: User | None, data: dict[str, Any]) -> Event:
    values = {field: data.get(field) for field in EDITABLE_FIELDS if field in data}
    values.setdefault("full_refund_hours", 48)
    values.setdefault("late_refund_percent", 0)
    values.setdefault("price", Decimal("0"))
    values.setdefault("booking_closes_at", None)
    values["currency"] = (values.get("currency") or "EUR").upper()
    _validate_event_fields(values)
    return Event.objects.create(partner=partner, created_by=created_by, status=Event.Status.DRAFT, **values)


@transaction.atomic
def event_update(*, partner: Partner, event_id: int, data: dict[str, Any], now: datetime | None = None) -> Event:
    now = _now(now)
    event = _partner_event_locked(partner, event_id)
    if event.status not in (Event.Status.DRAFT, Event.Status.PUBLISHED):
        raise Conflict(f"A {event.status} event can no longer be edited.", code="event_not_editable")
    changes = {field: value for field, value in data.items() if field in EDITABLE_FIELDS}
    if "currency" in changes and changes["currency"]:
        changes["currency"] = changes["currency"].upper()
    has_bookings = event.bookings.exists()
    if has_bookings and any(
        field in changes and changes[field] != getattr(event, field) for field in ("price", "currency")
    ):
        raise Conflict("The price of an event with bookings cannot change.", code="price_locked")
    if "capacity" in changes and changes["capacity"] < event.seats_booked:
        raise BusinessRuleError(
            f"{event.seats_booked} seats are already booked.",
            code="capacity_below_booked",
            fields={"capacity": [f"At least {event.seats_booked}."]},
        )
    old_capacity = event.capacity
    for field, value in changes.items():
        setattr(event, field, value)
    _validate_event_fields({field: getattr(event, field) for field in EDITABLE_FIELDS})
    event.save()
    if event.status == Event.Status.PUBLISHED and event.capacity > old_capacity:
        _waitlist_promote(event, now=now)
    return event


@transaction.atomic
def event_publish(*, partner: Partner, event_id: int, now: datetime | None = None) -> Event:
    now = _now(now)
    event = _partner_event_locked(partner, event_id)
    if event.status == Event.Status.PUBLISHED:
        return event
    if event.status != Event.Status.DRAFT:
        raise Conflict(f"A {event.status} event cannot be published.", code="event_not_publishable")
    if event.starts_at <= now:
        raise BusinessRuleError("The event has already started.", code="event_started")
    event.status = Event.Status.PUBLISHED
    event.published_at = now
    event.save(update_fields=["status", "published_at", "updated_at"])
    return event


@transaction.atomic
def event_cancel(*, partner: Partner, event_id: int, now: datetime | None = None) -> Event:
    """Cancel the event and every live booking: seats return, paid bookings are refunded in full, members
    are told. Cancelling a cancelled event changes nothing."""
    now = _now(now)
    event = _partner_event_locked(partner, event_id)
    if event.status == Event.Status.CANCELLED:
        return event
    if event.status == Event.Status.COMPLETED:
        raise Conflict("A completed event cannot be cancelled.", code="event_not_cancellable")
    bookings = list(
        Booking.objects.select_for_update()
        .filter(event=event, status__in=(Booking.Status.HELD, Booking.Status.CONFIRMED, Booking.Status.WAITLISTED))
        .order_by("id")
    )
    for booking in bookings:
        booking.status = Booking.Status.CANCELLED
        booking.cancelled_at = now
        booking.cancel_reason = "event_cancelled"
        _cancel_unpaid_intent(booking)
        _request_refund(booking, booking.amount)
        _notify(booking.pk, "event_cancelled")
    Booking.objects.bulk_update(
        bookings, ["status", "cancelled_at", "cancel_reason", "payment_status", "refund_amount"], batch_size=500
    )
    event.status = Event.Status.CANCELLED
    event.cancelled_at = now
    event.seats_booked = Booking.objects.filter(event=event, status__in=Booking.SEAT_STATUSES).aggregate(
        seats=Coalesce(Sum("seats"), 0)
    )["seats"]
    event.save(update_fields=["status", "cancelled_at", "seats_booked", "updated_at"])
    return event


def checkin_opens_before() -> timedelta:
    """How long before its start an event opens for check-in (`EVENT_CHECKIN_OPENS_HOURS`, default 2)."""
    return timedelta(hours=float(getattr(settings, "EVENT_CHECKIN_OPENS_HOURS", DEFAULT_CHECKIN_OPENS_HOURS)))


def checkin_window(event: Event) -> tuple[datetime, datetime]:
    """When attendees of `event` can be checked in: [opens, closes), from `checkin_opens_before()` before the
    start until `completion_grace()` after the end."""
    return event.starts_at - checkin_opens_before(), event.ends_at + completion_grace()


@transaction.atomic
def booking_check_in(*, partner: Partner, booking_id: int, by: User | None, now: datetime | None = None) -> Booking:
    """Mark a confirmed booking attended (idempotent) and record the engagement interaction. Possible only in
    the check-in window (`checkin_window`): before it 409 `check_in_not_open` (saying when it opens), after it
    409 `check_in_closed`; a completed event is 409 `event_completed`."""
    from loyalty.ingestion.services.interactions import interaction_record

    now = _now(now)
    if not Booking.objects.filter(pk=booking_id, event__partner=partner).exists():
        raise NotFound(code="booking_not_found")
    event, booking = _lock_booking(booking_id)
    if booking.status == Booking.Status.ATTENDED:
        return booking
    if event.status == Event.Status.COMPLETED:
        raise Conflict("The event is completed: attendance is final.", code="event_completed")
    opens, closes = checkin_window(event)
    if event.status == Event.Status.PUBLISHED and now >= closes:
        # The completion sweep has not run yet, but the check-in window is over all the same.
        raise Conflict("Check-in for this event has closed.", code="check_in_closed")
    if booking.status != Booking.Status.CONFIRMED or event.status == Event.Status.CANCELLED:
        raise Conflict(f"A {booking.status} booking cannot be checked in.", code="booking_not_checkable")
    if now < opens:
        hours = checkin_opens_before().total_seconds() / 3600
        raise Conflict(
            f"Check-in opens at {opens:%Y-%m-%d %H:%M} UTC, {hours:g} hour(s) before the event starts.",
            code="check_in_not_open",
            fields={"opens_at": [opens.isoformat()]},
        )
    booking.status = Booking.Status.ATTENDED
    booking.checked_in_at = now
    booking.checked_in_by = by
    booking.save(update_fields=["status", "checked_in_at", "checked_in_by"])
    membership = Membership.objects.select_related("customer").get(pk=booking.membership_id)
    interaction_record(
        customer=membership.customer,
        channel=Channel.EVENT,
        kind="event_attended",
        occurred_at=now,
        external_id=f"event-booking-{booking.pk}",
    )
    return booking
