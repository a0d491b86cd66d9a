"""Partners, their exclusive events, members' bookings and processed Stripe webhook events.

Seat accounting: `Event.seats_booked` is the sum of `seats` over the event's bookings that hold seats
(held, confirmed, attended, no_show). It only changes through conditional UPDATEs in the services, and a
CheckConstraint (seats_booked <= capacity) is the database's backstop against overbooking."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q


class Partner(models.Model):
    """An organisation that lists exclusive events (a restaurant group, a venue, a promoter)."""

    name = models.CharField(max_length=200, unique=True)
    contact_email = models.EmailField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.CheckConstraint(condition=~Q(name=""), name="partner_name_not_empty")]

    def __str__(self) -> str:
        return self.name


class PartnerStaff(models.Model):
    """Links a user (role partner_staff) to the one partner they work for."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="partner_staff")
    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="staff")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "partner staff"

    def __str__(self) -> str:
        return f"{self.user} @ {self.partner}"


class Event(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        PUBLISHED = "published", "Published"
        CANCELLED = "cancelled", "Cancelled"
        COMPLETED = "completed", "Completed"

    partner = models.ForeignKey(Partner, on_delete=models.PROTECT, related_name="events")
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    venue = models.CharField(max_length=200, blank=True, default="")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    capacity = models.PositiveIntegerField()
    seats_booked = models.PositiveIntegerField(default=0, help_text="Seats of held, confirmed and attended bookings.")
    min_tier_rank = models.PositiveSmallIntegerField(default=1, help_text="Lowest tier rank that may book.")
    price = models.DecimalField(max_digits=10, decimal_places=2, default=0, help_text="Per seat; 0 = free.")
    currency = models.CharField(max_length=3, default="EUR")
    booking_opens_at = models.DateTimeField(
        help_text="When the lowest eligible tier may book; higher tiers open earlier by their early-access hours."
    )
    booking_closes_at = models.DateTimeField(null=True, blank=True, help_text="Defaults to the start.")
    full_refund_hours = models.PositiveIntegerField(
        default=48, help_text="Cancelling a paid booking at least this many hours before the start refunds it fully."
    )
    late_refund_percent = models.PositiveSmallIntegerField(
        default=0, help_text="Share refunded when cancelling later than full_refund_hours before the start."
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    published_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(
        null=True, blank=True, help_text="When the event was closed after it ended (attendance final)."
    )

    class Meta:
        ordering = ["starts_at", "id"]
        indexes = [
            models.Index(fields=["status", "starts_at"], name="event_status_starts_idx"),
            models.Index(fields=["partner", "starts_at"], name="event_partner_starts_idx"),
            # The completion sweep: published events whose end has passed.
            models.Index(fields=["ends_at"], name="event_published_ends_idx", condition=Q(status="published")),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(seats_booked__lte=F("capacity")), name="event_seats_within_capacity"),
            models.CheckConstraint(condition=Q(capacity__gte=1), name="event_capacity_positive"),
            models.CheckConstraint(condition=Q(ends_at__gt=F("starts_at")), name="event_ends_after_start"),
            models.CheckConstraint(condition=Q(price__gte=0), name="event_price_non_negative"),
            models.CheckConstraint(condition=Q(late_refund_percent__lte=100), name="event_late_refund_percent"),
            models.CheckConstraint(condition=Q(booking_opens_at__lt=F("starts_at")), name="event_opens_before_start"),
            models.CheckConstraint(
                condition=Q(booking_closes_at__isnull=True)
                | Q(booking_closes_at__gt=F("booking_opens_at"), booking_closes_at__lte=F("starts_at")),
                name="event_booking_window_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def is_paid(self) -> bool:
        return self.price > 0

    @property
    def seats_left(self) -> int:
        return max(self.capacity - self.seats_booked, 0)


class Booking(models.Model):
    class Status(models.TextChoices):
        HELD = "held", "Held (awaiting payment)"
        CONFIRMED = "confirmed", "Confirmed"
        WAITLISTED = "waitlisted", "Waitlisted"
        CANCELLED = "cancelled", "Cancelled"
        EXPIRED = "expired", "Expired (unpaid hold)"
        ATTENDED = "attended", "Attended"
        NO_SHOW = "no_show", "No show"

    class PaymentStatus(models.TextChoices):
        NOT_REQUIRED = "not_required", "Not required (free)"
        PENDING = "pending", "Pending"
        FAILED = "failed", "Last attempt failed"
        PAID = "paid", "Paid"
        REFUND_PENDING = "refund_pending", "Refund requested"
        REFUNDED = "refunded", "Refunded"

    event = models.ForeignKey(Event, on_delete=models.PROTECT, related_name="bookings")
    membership = models.ForeignKey("loyalty.Membership", on_delete=models.PROTECT, related_name="event_bookings")
    seats = models.PositiveSmallIntegerField(help_text="The member plus their guests.")
    status = models.CharField(max_length=16, choices=Status.choices)
    tier_rank = models.PositiveSmallIntegerField(help_text="Member's tier rank when booking (waitlist order).")
    hold_expires_at = models.DateTimeField(null=True, blank=True)
    amount = models.DecimalField(max_digits=10, decimal_places=2, default=0)
    currency = models.CharField(max_length=3, default="EUR")
    payment_status = models.CharField(max_length=16, choices=PaymentStatus.choices, default=PaymentStatus.NOT_REQUIRED)
    payment_intent_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    refund_amount = models.DecimalField(max_digits=10, decimal_places=2, default=0, help_text="Decided refund.")
    refunded_amount = models.DecimalField(
        max_digits=10, decimal_places=2, default=0, help_text="Refunded as Stripe reports it."
    )
    refund_id = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField()
    confirmed_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    cancel_reason = models.CharField(max_length=32, blank=True, default="")
    confirmation_emailed_at = models.DateTimeField(
        null=True, blank=True, help_text="When the booking confirmation email went out (it goes out once)."
    )
    checked_in_at = models.DateTimeField(null=True, blank=True)
    checked_in_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    LIVE_STATUSES = ("held", "confirmed", "waitlisted", "attended")
    SEAT_STATUSES = ("held", "confirmed", "attended", "no_show")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["event", "status", "tier_rank", "created_at"], name="booking_event_waitlist_idx"),
            models.Index(fields=["membership", "created_at"], name="booking_membership_idx"),
            models.Index(fields=["hold_expires_at"], name="booking_hold_expiry_idx", condition=Q(status="held")),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["event", "membership"],
                condition=Q(status__in=["held", "confirmed", "waitlisted", "attended"]),
                name="booking_one_live_per_member_event",
            ),
            models.CheckConstraint(condition=Q(seats__gte=1), name="booking_seats_positive"),
            models.CheckConstraint(condition=Q(amount__gte=0), name="booking_amount_non_negative"),
            models.CheckConstraint(
                condition=~Q(status="held") | Q(hold_expires_at__isnull=False), name="booking_held_has_expiry"
            ),
            models.CheckConstraint(
                condition=Q(refund_amount__lte=F("amount")) & Q(refunded_amount__lte=F("amount")),
                name="booking_refund_within_amount",
            ),
        ]

    def __str__(self) -> str:
        return f"Booking {self.pk} ({self.status})"


class StripeEvent(models.Model):
    """A processed Stripe webhook event, stored in the same transaction as the change it caused."""

    event_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=100)
    booking = models.ForeignKey(Booking, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    outcome = models.CharField(max_length=64, blank=True, default="")
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-received_at", "-id"]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"
