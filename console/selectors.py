"""Reads only the console needs (small summaries beside the apps' own selectors)."""

from __future__ import annotations

from django.db.models import Count

from concierge.models import ConciergeRequest, RequestStatus


def request_status_counts() -> list[dict]:
    """How many requests are in each status, every status listed (one query)."""
    counts = dict(ConciergeRequest.objects.order_by().values_list("status").annotate(n=Count("id")))
    return [{"status": value, "label": label, "count": counts.get(value, 0)} for value, label in RequestStatus.choices]


def booking_search(bookings, q: str):
    """Narrow a partner's bookings to a name or a booking code ('B-42', '#42' or '42')."""
    from django.db.models import Q

    q = (q or "").strip()
    if not q:
        return bookings
    code = q.upper().removeprefix("B-").removeprefix("#").strip()
    match = Q(membership__customer__name__icontains=q)
    if code.isdigit() and len(code) <= 12:
        match |= Q(pk=int(code))
    return bookings.filter(match)


def cancellation_effects(bookings) -> dict:
    """What cancelling the event does to its live bookings, counted before the partner confirms (one query)."""
    from decimal import Decimal

    from django.db.models import Q, Sum
    from django.db.models.functions import Coalesce

    from events.models import Booking

    S = Booking.Status
    paid = Q(paid_at__isnull=False, amount__gt=0)
    totals = bookings.aggregate(
        confirmed=Count("id", filter=Q(status=S.CONFIRMED)),
        confirmed_seats=Coalesce(Sum("seats", filter=Q(status=S.CONFIRMED)), 0),
        held=Count("id", filter=Q(status=S.HELD)),
        held_seats=Coalesce(Sum("seats", filter=Q(status=S.HELD)), 0),
        waitlisted=Count("id", filter=Q(status=S.WAITLISTED)),
        refunds=Count("id", filter=Q(status__in=(S.HELD, S.CONFIRMED, S.WAITLISTED)) & paid),
        refund_total=Coalesce(
            Sum("amount", filter=Q(status__in=(S.HELD, S.CONFIRMED, S.WAITLISTED)) & paid), Decimal("0")
        ),
    )
    totals["emailed"] = totals["confirmed"] + totals["held"] + totals["waitlisted"]
    return totals
