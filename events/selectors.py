"""Reads of the events app. Every queryset that feeds a list joins what it shows (no N+1)."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Count, DateTimeField, ExpressionWrapper, F, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from core.errors import NotFound, PermissionDenied
from events.models import Booking, Event, Partner
from loyalty.programmes.models import Membership, Tier


def _with_counts(queryset: QuerySet[Event]) -> QuerySet[Event]:
    return queryset.annotate(
        confirmed_count=Count("bookings", filter=Q(bookings__status=Booking.Status.CONFIRMED)),
        held_count=Count("bookings", filter=Q(bookings__status=Booking.Status.HELD)),
        waitlisted_count=Count("bookings", filter=Q(bookings__status=Booking.Status.WAITLISTED)),
        attended_count=Count("bookings", filter=Q(bookings__status=Booking.Status.ATTENDED)),
        no_show_count=Count("bookings", filter=Q(bookings__status=Booking.Status.NO_SHOW)),
        attended_seats=Coalesce(Sum("bookings__seats", filter=Q(bookings__status=Booking.Status.ATTENDED)), 0),
        no_show_seats=Coalesce(Sum("bookings__seats", filter=Q(bookings__status=Booking.Status.NO_SHOW)), 0),
    )


def partner_events(*, partner: Partner, status: str | None = None) -> QuerySet[Event]:
    queryset = Event.objects.filter(partner=partner)
    if status:
        queryset = queryset.filter(status=status)
    return _with_counts(queryset).order_by("starts_at", "id")


def partner_event(*, partner: Partner, event_id: int) -> Event:
    event = _with_counts(Event.objects.filter(partner=partner, pk=event_id)).first()
    if event is None:
        raise NotFound(code="event_not_found")
    return event


def partner_event_bookings(*, partner: Partner, event_id: int, status: str | None = None) -> QuerySet[Booking]:
    """Bookings of one of the partner's events, with the attendee's name only (check-in needs no more)."""
    if not Event.objects.filter(partner=partner, pk=event_id).exists():
        raise NotFound(code="event_not_found")
    queryset = Booking.objects.filter(event_id=event_id).select_related("membership__customer")
    if status:
        queryset = queryset.filter(status=status)
    return queryset.order_by("created_at", "id")


def _member_queryset(tier: Tier) -> QuerySet[Event]:
    return Event.objects.select_related("partner").annotate(
        bookable_from=ExpressionWrapper(
            F("booking_opens_at") - Value(timedelta(hours=tier.early_access_hours)), output_field=DateTimeField()
        ),
        bookable_until=Coalesce("booking_closes_at", "starts_at"),
    )


def member_bookable_events(*, tier: Tier, now: datetime | None = None) -> QuerySet[Event]:
    """Published events the member's tier may book now (higher tiers open earlier)."""
    now = now or timezone.now()
    return (
        _member_queryset(tier)
        .filter(
            booking_opens_at__lte=now + timedelta(hours=tier.early_access_hours),
            status=Event.Status.PUBLISHED,
            min_tier_rank__lte=tier.rank,
            bookable_until__gt=now,
        )
        .order_by("starts_at", "id")
    )


TIER_TOO_LOW = "tier_too_low"


def member_event_tier_check(*, tier: Tier, event: Event) -> None:
    """Refuse a published event above the member's tier with a reason: 403 `tier_too_low` naming the lowest tier
    of the member's programme that may book it. An event no tier of the programme reaches is none of the
    member's business: 404, as for drafts and unknown events."""
    if event.min_tier_rank <= tier.rank:
        return
    eligible = Tier.objects.filter(programme_id=tier.programme_id, rank__gte=event.min_tier_rank)
    required = eligible.order_by("rank").first()
    if required is None:
        raise NotFound(code="event_not_found")
    raise PermissionDenied(
        f"This event is for {required.name} members and above; your tier is {tier.name}.",
        code=TIER_TOO_LOW,
        fields={"required_tier": required.name, "required_tier_rank": required.rank, "your_tier": tier.name},
    )


def member_event(*, tier: Tier, event_id: int) -> Event:
    """A published event the member's tier is eligible for (its window may not be open yet). Unpublished and
    unknown events are 404; a published event above the member's tier is 403 `tier_too_low`."""
    event = _member_queryset(tier).filter(pk=event_id, status=Event.Status.PUBLISHED).first()
    if event is None:
        raise NotFound(code="event_not_found")
    member_event_tier_check(tier=tier, event=event)
    return event


def member_bookings(*, membership: Membership, status: str | None = None) -> QuerySet[Booking]:
    """The member's own bookings (all of the customer's memberships), newest first."""
    queryset = Booking.objects.filter(membership__customer_id=membership.customer_id).select_related("event__partner")
    if status:
        queryset = queryset.filter(status=status)
    return queryset.order_by("-created_at", "-id")


def member_booking(*, membership: Membership, booking_id: int) -> Booking:
    booking = member_bookings(membership=membership).filter(pk=booking_id).first()
    if booking is None:
        raise NotFound(code="booking_not_found")
    return booking


def timeline_entries(*, customer_id: int) -> list[dict]:
    """The customer's event bookings as timeline entries for the manager's customer timeline."""
    bookings = (
        Booking.objects.filter(membership__customer_id=customer_id)
        .select_related("event")
        .order_by("-created_at", "-id")
    )
    return [
        {
            "at": booking.created_at,
            "kind": "event_booking",
            "summary": f"{booking.get_status_display()}: {booking.event.title} "
            f"({booking.seats} seat{'s' if booking.seats != 1 else ''}, {booking.event.starts_at:%Y-%m-%d})",
            "ref": f"booking:{booking.pk}",
        }
        for booking in bookings
    ]
