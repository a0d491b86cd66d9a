from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from ninja import Schema
from pydantic import AwareDatetime, Field, field_validator

from core.schemas import Money, RowSchema
from events.models import Booking, Event

MIN_YEAR, MAX_YEAR = 2000, 2100

# Literals, not the models' TextChoices: enums named "Status" in several apps would collide in OpenAPI.
EventStatus = Literal["draft", "published", "cancelled", "completed"]
BookingStatus = Literal["held", "confirmed", "waitlisted", "cancelled", "expired", "attended", "no_show"]
PaymentStatus = Literal["not_required", "pending", "failed", "paid", "refund_pending", "refunded"]
assert set(EventStatus.__args__) == set(Event.Status.values)
assert set(BookingStatus.__args__) == set(Booking.Status.values)
assert set(PaymentStatus.__args__) == set(Booking.PaymentStatus.values)


def _bounded(value: datetime | None) -> datetime | None:
    if value is not None and not (MIN_YEAR <= value.year <= MAX_YEAR):
        raise ValueError(f"Year must be between {MIN_YEAR} and {MAX_YEAR}.")
    return value


DATETIME_FIELDS = ("starts_at", "ends_at", "booking_opens_at", "booking_closes_at")


class EventIn(Schema):
    title: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=10_000)
    venue: str = Field("", max_length=200)
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    capacity: int = Field(ge=1, le=100_000)
    min_tier_rank: int = Field(1, ge=0, le=1000, description="Lowest tier rank that may book.")
    price: Decimal = Field(Decimal("0"), ge=0, max_digits=10, decimal_places=2, description="Per seat; 0 = free.")
    currency: str = Field("EUR", pattern=r"^[A-Za-z]{3}$")
    booking_opens_at: AwareDatetime = Field(
        description="Opening for the lowest eligible tier; each tier opens earlier by its early-access hours."
    )
    booking_closes_at: AwareDatetime | None = Field(None, description="Defaults to the start.")
    full_refund_hours: int = Field(48, ge=0, le=8760, description="Full refund until this many hours before start.")
    late_refund_percent: int = Field(0, ge=0, le=100, description="Refund share after that.")

    @field_validator(*DATETIME_FIELDS)
    @classmethod
    def _years(cls, value):
        return _bounded(value)


class EventPatch(Schema):
    """Only the fields sent change. The price of an event with bookings cannot change."""

    title: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=10_000)
    venue: str | None = Field(None, max_length=200)
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    capacity: int | None = Field(None, ge=1, le=100_000)
    min_tier_rank: int | None = Field(None, ge=0, le=1000)
    price: Decimal | None = Field(None, ge=0, max_digits=10, decimal_places=2)
    currency: str | None = Field(None, pattern=r"^[A-Za-z]{3}$")
    booking_opens_at: AwareDatetime | None = None
    booking_closes_at: AwareDatetime | None = None
    full_refund_hours: int | None = Field(None, ge=0, le=8760)
    late_refund_percent: int | None = Field(None, ge=0, le=100)

    @field_validator(*DATETIME_FIELDS)
    @classmethod
    def _years(cls, value):
        return _bounded(value)

    def changes(self) -> dict:
        data = self.model_dump(exclude_unset=True)
        # null means "unchanged", except for booking_closes_at where it means "close at the start".
        return {key: value for key, value in data.items() if value is not None or key == "booking_closes_at"}


class PartnerEventOut(Schema):
    id: int
    title: str
    description: str
    venue: str
    starts_at: datetime
    ends_at: datetime
    capacity: int
    seats_booked: int
    seats_left: int
    min_tier_rank: int
    price: Money = Field(description="Per seat, in `currency`; 0.00 = free.")
    currency: str
    booking_opens_at: datetime
    booking_closes_at: datetime | None
    full_refund_hours: int
    late_refund_percent: int
    status: EventStatus
    published_at: datetime | None
    cancelled_at: datetime | None
    completed_at: datetime | None = Field(None, description="Set when the event is completed: attendance is final.")
    confirmed_count: int = 0
    held_count: int = 0
    waitlisted_count: int = 0
    attended_count: int = Field(0, description="Bookings checked in.")
    no_show_count: int = Field(0, description="Confirmed bookings nobody checked in (set when the event completes).")
    attended_seats: int = Field(0, description="Seats (members plus guests) of attended bookings.")
    no_show_seats: int = Field(0, description="Seats of no-show bookings.")


class MemberEventOut(RowSchema):
    id: int
    partner: str
    title: str
    description: str
    venue: str
    starts_at: datetime
    ends_at: datetime
    min_tier_rank: int
    price: Money = Field(description="Per seat, in `currency`; 0.00 = free.")
    currency: str
    capacity: int
    seats_left: int
    bookable_from: datetime = Field(description="When your tier may book (early access included).")
    bookable_until: datetime
    full_refund_hours: int
    late_refund_percent: int

    # A resolver, not a dotted alias: the member selectors answer dicts with the name (events.selectors).
    @staticmethod
    def resolve_partner(obj) -> str:
        return obj["partner"] if isinstance(obj, dict) else obj.partner.name


class BookingIn(Schema):
    guests: int = Field(0, ge=0, le=50, description="Guests besides the member, up to the tier's allowance.")
    join_waitlist: bool = Field(False, description="Join the waitlist if the event is full (else 409).")


class PaymentOut(Schema):
    payment_intent_id: str
    client_secret: str = Field(description="For Stripe.js / the mobile SDK to confirm the payment.")
    status: str


class BookingOut(RowSchema):
    id: int
    event_id: int
    event_title: str
    event_starts_at: datetime
    seats: int
    status: BookingStatus
    hold_expires_at: datetime | None
    amount: Money = Field(description="In `currency`.")
    currency: str
    payment_status: PaymentStatus
    refund_amount: Money = Field(description="Refund decided, in `currency`.")
    refunded_amount: Money = Field(description="Refunded as Stripe reports it, in `currency`.")
    created_at: datetime
    confirmed_at: datetime | None
    cancelled_at: datetime | None
    cancel_reason: str
    checked_in_at: datetime | None

    # Resolvers, not dotted aliases: an Idempotency-Key replay validates the stored JSON body again.
    @staticmethod
    def resolve_event_title(obj) -> str:
        return obj["event_title"] if isinstance(obj, dict) else obj.event.title

    @staticmethod
    def resolve_event_starts_at(obj) -> datetime:
        return obj["event_starts_at"] if isinstance(obj, dict) else obj.event.starts_at


class BookingCreatedOut(BookingOut):
    payment: PaymentOut | None = Field(
        None,
        description="For a held (paid) booking: the PaymentIntent to confirm. Null for free or waitlisted "
        "bookings, and in the replay of a retry with the same Idempotency-Key (the client secret is never "
        "stored; call POST /bookings/{id}/payment).",
    )


class PartnerBookingOut(Schema):
    """What check-in needs and nothing more: no contact details."""

    id: int
    attendee_name: str = Field(alias="membership.customer.name")
    seats: int
    status: BookingStatus
    created_at: datetime
    checked_in_at: datetime | None


class WebhookOut(Schema):
    received: bool
    outcome: str
