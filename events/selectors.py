"""Reads of the events app. Every queryset that feeds a list joins what it shows (no N+1)."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import connection, connections
from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from core.errors import NotFound, PermissionDenied
from core.rows import Columns, PagedRows, Statement
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


# Member reads: the hottest queries of the API (issue 16), written once as SQL (core.rows) and answered as dicts
# of the schema's fields (events.schemas.MemberEventOut, BookingOut), not model instances.
_EVENT = Columns(
    Event,
    "e",
    only=[
        "id",
        "title",
        "description",
        "venue",
        "starts_at",
        "ends_at",
        "min_tier_rank",
        "price",
        "currency",
        "capacity",
        "seats_booked",
        "booking_opens_at",
        "booking_closes_at",
        "full_refund_hours",
        "late_refund_percent",
    ],
)
_BOOKING = Columns(
    Booking,
    "b",
    only=[
        "id",
        "event_id",
        "seats",
        "status",
        "hold_expires_at",
        "amount",
        "currency",
        "payment_status",
        "refund_amount",
        "refunded_amount",
        "created_at",
        "confirmed_at",
        "cancelled_at",
        "cancel_reason",
        "checked_in_at",
    ],
)
_BOOKING_EVENT = Columns(Event, "ev", only=["title", "starts_at"])


def _quoted(using: str):
    return connections[using].ops.quote_name


def _member_events_from(using: str) -> str:
    q = _quoted(using)
    return (
        f"FROM {q(Event._meta.db_table)} e INNER JOIN {q(Partner._meta.db_table)} pa "
        f"ON pa.{q('id')} = e.{q('partner_id')}"
    )


def _bookable_where(using: str) -> str:
    q = _quoted(using)
    return (
        f"WHERE e.{q('booking_opens_at')} <= %s AND e.{q('status')} = %s AND e.{q('min_tier_rank')} <= %s "
        f"AND COALESCE(e.{q('booking_closes_at')}, e.{q('starts_at')}) > %s"
    )


_BOOKABLE_PAGE = Statement(
    lambda using: (
        f"SELECT {_EVENT.sql(using)}, pa.{_quoted(using)('name')} {_member_events_from(using)} "
        f"{_bookable_where(using)} ORDER BY e.{_quoted(using)('starts_at')} ASC, e.{_quoted(using)('id')} ASC "
        f"LIMIT %s OFFSET %s"
    ),
    name="member_bookable_events",
)
_BOOKABLE_COUNT = Statement(
    lambda using: f"SELECT COUNT(*) {_member_events_from(using)} {_bookable_where(using)}",
    name="member_bookable_events_count",
)
_MEMBER_EVENT = Statement(
    lambda using: (
        f"SELECT {_EVENT.sql(using)}, pa.{_quoted(using)('name')} {_member_events_from(using)} "
        f"WHERE e.{_quoted(using)('id')} = %s AND e.{_quoted(using)('status')} = %s"
    ),
    name="member_event",
)


def _member_event_row(row, *, early_access_hours: int) -> dict:
    """An event as members see it: MemberEventOut's fields (the tier's booking window, the seats left)."""
    event = _EVENT.values(row)
    event["partner"] = row[_EVENT.width]
    event["seats_left"] = max(event["capacity"] - event.pop("seats_booked"), 0)
    event["bookable_from"] = event["booking_opens_at"] - timedelta(hours=early_access_hours)
    event["bookable_until"] = event["booking_closes_at"] or event["starts_at"]
    return event


def member_bookable_events(*, tier: Tier, now: datetime | None = None) -> PagedRows:
    """Published events the member's tier may book now (higher tiers open earlier), soonest first: pages of
    MemberEventOut dicts."""
    now = now or timezone.now()
    adapt = connection.ops.adapt_datetimefield_value
    where = [
        adapt(now + timedelta(hours=tier.early_access_hours)),
        Event.Status.PUBLISHED,
        tier.rank,
        adapt(now),
    ]

    def fetch(limit: int, offset: int) -> list[dict]:
        rows = _BOOKABLE_PAGE.fetchall([*where, limit, offset])
        return [_member_event_row(row, early_access_hours=tier.early_access_hours) for row in rows]

    return PagedRows(fetch, lambda: _BOOKABLE_COUNT.fetchone(where)[0])


TIER_TOO_LOW = "tier_too_low"


def member_event_tier_check(*, tier: Tier, min_tier_rank: int) -> None:
    """Refuse a published event above the member's tier with a reason: 403 `tier_too_low` naming the lowest tier
    of the member's programme that may book it. An event no tier of the programme reaches is none of the
    member's business: 404, as for drafts and unknown events."""
    if min_tier_rank <= tier.rank:
        return
    eligible = Tier.objects.filter(programme_id=tier.programme_id, rank__gte=min_tier_rank)
    required = eligible.order_by("rank").first()
    if required is None:
        raise NotFound(code="event_not_found")
    raise PermissionDenied(
        f"This event is for {required.name} members and above; your tier is {tier.name}.",
        code=TIER_TOO_LOW,
        fields={"required_tier": required.name, "required_tier_rank": required.rank, "your_tier": tier.name},
    )


def member_event(*, tier: Tier, event_id: int) -> dict:
    """A published event the member's tier is eligible for (its window may not be open yet), as a
    MemberEventOut dict. Unpublished and unknown events are 404; a published event above the member's tier is
    403 `tier_too_low`."""
    row = _MEMBER_EVENT.fetchone([event_id, Event.Status.PUBLISHED])
    if row is None:
        raise NotFound(code="event_not_found")
    event = _member_event_row(row, early_access_hours=tier.early_access_hours)
    member_event_tier_check(tier=tier, min_tier_rank=event["min_tier_rank"])
    return event


def _member_bookings_from(using: str) -> str:
    q = _quoted(using)
    return (
        f"FROM {q(Booking._meta.db_table)} b "
        f"INNER JOIN {q(Membership._meta.db_table)} m ON m.{q('id')} = b.{q('membership_id')} "
        f"INNER JOIN {q(Event._meta.db_table)} ev ON ev.{q('id')} = b.{q('event_id')} "
        f"WHERE m.{q('customer_id')} = %s"
    )


def _member_bookings_sql(using: str, *, status: bool, count: bool) -> str:
    q = _quoted(using)
    by_status = f" AND b.{q('status')} = %s" if status else ""
    if count:
        return f"SELECT COUNT(*) {_member_bookings_from(using)}{by_status}"
    return (
        f"SELECT {_BOOKING.sql(using)}, {_BOOKING_EVENT.sql(using)} {_member_bookings_from(using)}{by_status} "
        f"ORDER BY b.{q('created_at')} DESC, b.{q('id')} DESC LIMIT %s OFFSET %s"
    )


_MEMBER_BOOKINGS = {
    (status, count): Statement(
        lambda using, status=status, count=count: _member_bookings_sql(using, status=status, count=count),
        name=f"member_bookings{'_by_status' if status else ''}{'_count' if count else ''}",
    )
    for status in (False, True)
    for count in (False, True)
}


def _member_booking_row(row) -> dict:
    booking = _BOOKING.values(row)
    event = _BOOKING_EVENT.values(row, _BOOKING.width)
    booking["event_title"], booking["event_starts_at"] = event["title"], event["starts_at"]
    return booking


def member_bookings(*, membership: Membership, status: str | None = None) -> PagedRows:
    """The member's own bookings (all of the customer's memberships), newest first: pages of BookingOut dicts."""
    where = [membership.customer_id, *([status] if status else [])]
    page, count = _MEMBER_BOOKINGS[(bool(status), False)], _MEMBER_BOOKINGS[(bool(status), True)]

    def fetch(limit: int, offset: int) -> list[dict]:
        return [_member_booking_row(row) for row in page.fetchall([*where, limit, offset])]

    return PagedRows(fetch, lambda: count.fetchone(where)[0])


def member_booking(*, membership: Membership, booking_id: int) -> Booking:
    """One of the member's own bookings (any of the customer's memberships), with its event."""
    booking = (
        Booking.objects.filter(membership__customer_id=membership.customer_id, pk=booking_id)
        .select_related("event__partner")
        .first()
    )
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
