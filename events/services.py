"""Every write of the events app: partner event management, member bookings, waitlists, holds, check-in and
Stripe payment settlement.

Locking order, everywhere: the event row first, then booking rows. Seats move only through
`_seats_reserve` (a conditional UPDATE that can never take seats_booked above capacity) and `_seats_release`.
Stripe is never called inside a transaction: refunds and PaymentIntent cancellations run in Celery tasks
after commit, and PaymentIntents are created after the hold is committed (`booking_payment_start`)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, OuterRef, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import User
from core.errors import BusinessRuleError, Conflict, NotFound, PermissionDenied, ValidationFailed
from events import gateway
from events.models import Booking, Event, Partner, PartnerStaff, StripeEvent
from loyalty.models import Channel, Membership
from loyalty.programmes.selectors.members import NOT_A_MEMBER, effective_tier

logger = logging.getLogger("premier.events")

HOLD_MINUTES = 15
PROMOTION_HOLD_HOURS = 12
DEFAULT_COMPLETION_GRACE_HOURS = 2
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


# --------------------------------------------------------------------------------------------------- helpers


def _now(now: datetime | None) -> datetime:
    return now or timezone.now()


def _seats_reserve(event_id: int, seats: int) -> bool:
    """Take `seats` if they are free. One conditional UPDATE: safe under any concurrency."""
    return bool(
        Event.objects.filter(pk=event_id, seats_booked__lte=F("capacity") - seats).update(
            seats_booked=F("seats_booked") + seats
        )
    )


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


def _on_commit_task(task, *args: Any) -> None:
    task.delay_on_commit(*args)


def _notify(booking_id: int, kind: str) -> None:
    from events.tasks import booking_notify

    _on_commit_task(booking_notify, booking_id, kind)


def _request_refund(booking: Booking, amount: Decimal) -> None:
    """Decide a refund of `amount` for a paid booking; a task asks Stripe after commit."""
    from events.tasks import booking_refund

    if amount <= 0 or booking.payment_status != Booking.PaymentStatus.PAID:
        return
    booking.refund_amount = min(amount, booking.amount)
    booking.payment_status = Booking.PaymentStatus.REFUND_PENDING
    _on_commit_task(booking_refund, booking.pk)


def _cancel_unpaid_intent(booking: Booking) -> None:
    from events.tasks import booking_cancel_payment_intent

    if booking.payment_intent_id and booking.payment_status in (
        Booking.PaymentStatus.PENDING,
        Booking.PaymentStatus.FAILED,
    ):
        _on_commit_task(booking_cancel_payment_intent, booking.pk)


def completion_grace() -> timedelta:
    """How long after its end an event stays open for check-in before it is completed."""
    return timedelta(hours=float(getattr(settings, "EVENT_COMPLETION_GRACE_HOURS", DEFAULT_COMPLETION_GRACE_HOURS)))


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


# -------------------------------------------------------------------------------------------------- partners


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


@transaction.atomic
def booking_check_in(*, partner: Partner, booking_id: int, by: User | None, now: datetime | None = None) -> Booking:
    """Mark a confirmed booking attended (idempotent) and record the engagement interaction. Possible until
    `completion_grace()` after the event's end; a completed event is 409 `event_completed`."""
    from loyalty.ingestion.services.interactions import interaction_record

    now = _now(now)
    if not Booking.objects.filter(pk=booking_id, event__partner=partner).exists():
        raise NotFound(code="booking_not_found")
    event, booking = _lock_booking(booking_id)
    if booking.status == Booking.Status.ATTENDED:
        return booking
    if event.status == Event.Status.COMPLETED:
        raise Conflict("The event is completed: attendance is final.", code="event_completed")
    if event.status == Event.Status.PUBLISHED and now >= event.ends_at + completion_grace():
        # The completion sweep has not run yet, but the check-in window is over all the same.
        raise Conflict("Check-in for this event has closed.", code="check_in_closed")
    if booking.status != Booking.Status.CONFIRMED or event.status == Event.Status.CANCELLED:
        raise Conflict(f"A {booking.status} booking cannot be checked in.", code="booking_not_checkable")
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


def events_complete(*, now: datetime | None = None, batch: int = 500) -> dict[str, int]:
    """Close published events that ended more than `completion_grace()` ago, set-based, `batch` events per
    transaction: the event becomes `completed`; confirmed bookings nobody checked in become `no_show`;
    remaining holds expire (their PaymentIntents are cancelled, their seats freed) and waitlisted bookings
    are cancelled (reason `event_completed`) and their members are told by email after commit (the event has
    taken place, their waitlist place is closed); a held or waitlisted booking that was somehow paid is refunded
    in full through the usual refund task. Attended bookings are left alone. Idempotent: a completed event is
    never touched again, so a second run (or a concurrent one, which waits on the event locks) changes
    nothing."""
    from events.tasks import booking_cancel_payment_intent, booking_refund

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
                _on_commit_task(booking_cancel_payment_intent, booking_id)
            for booking_id in paid_ids:
                _on_commit_task(booking_refund, booking_id)
            for booking_id in waitlisted_ids:
                _notify(booking_id, "waitlist_closed")
            totals["refunds"] += len(paid_ids)


# -------------------------------------------------------------------------------------------------- bookings


@transaction.atomic
def booking_create(
    *, membership: Membership, event_id: int, guests: int = 0, join_waitlist: bool = False, now: datetime | None = None
) -> Booking:
    """Book the member (plus guests) on an event. Free: confirmed. Paid: held for HOLD_MINUTES until paid
    (the PaymentIntent is created after commit by `booking_payment_start`). Full: waitlisted if asked,
    else 409 `event_full`."""
    now = _now(now)
    tier = _member_tier(membership, now)
    event = Event.objects.filter(pk=event_id, status=Event.Status.PUBLISHED, min_tier_rank__lte=tier.rank).first()
    if event is None:
        raise NotFound(code="event_not_found")
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
    live = Booking.objects.filter(event_id=event.pk, membership=membership, status__in=Booking.LIVE_STATUSES)
    if live.exists():
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
        with transaction.atomic():
            booking = Booking.objects.create(**values)
    except IntegrityError as exc:
        # A concurrent request of the same member won the one-live-booking constraint. Raising rolls back
        # this transaction, and with it the seats reserved above.
        raise Conflict("You already have a booking for this event.", code="already_booked") from exc
    booking.event = event
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


# -------------------------------------------------------------------------------------------------- payments


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
