"""Reads of customers for programme managers and agents: filtered lists and a detail with history."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db.models import Count, Max, Q, QuerySet, Sum
from django.db.models.functions import TruncMonth
from django.utils import timezone

from core.errors import NotFound
from loyalty.customers.models import Customer, Interaction, RevenueEntry

ORDERINGS = {
    "id": ("id",),
    "-id": ("-id",),
    "name": ("name", "id"),
    "-name": ("-name", "-id"),
    "joined_at": ("joined_at", "id"),
    "-joined_at": ("-joined_at", "-id"),
}
HISTORY_MONTHS = 12
CHANNEL_MIX_DAYS = 365
LAST_INTERACTIONS = 10
CENTS = Decimal("0.01")


def customer_list(
    *,
    q: str | None = None,
    status: str | None = None,
    region: str | None = None,
    joined_from: date | None = None,
    joined_to: date | None = None,
    ordering: str = "id",
) -> QuerySet[Customer]:
    """Customers matching the filters. `q` matches the external id or email exactly (case-insensitive for
    email), an email prefix, or part of the name."""
    qs = Customer.objects.all()
    if q:
        q = q.strip()
        qs = qs.filter(
            Q(external_id=q) | Q(email__iexact=q) | Q(email__istartswith=q) | Q(name__icontains=q) | Q(phone=q)
        )
    if status:
        qs = qs.filter(status=status)
    if region:
        qs = qs.filter(region=region)
    if joined_from:
        qs = qs.filter(joined_at__date__gte=joined_from)
    if joined_to:
        qs = qs.filter(joined_at__date__lte=joined_to)
    return qs.order_by(*ORDERINGS[ordering])


@dataclass
class CustomerDetail:
    customer: Customer
    revenue_currency: str
    revenue_by_month: list[dict]
    revenue_total: Decimal
    channel_mix: list[dict]
    last_interactions: list[Interaction]


def _month_starts(now: datetime, months: int) -> list[date]:
    year, month = now.year, now.month
    result = []
    for _ in range(months):
        result.append(date(year, month, 1))
        month -= 1
        if month == 0:
            month, year = 12, year - 1
    return list(reversed(result))


def customer_detail(*, customer_id: int, now: datetime | None = None) -> CustomerDetail:
    """One customer with revenue per month (last 12 months, zero months included), channel mix over the last
    year and the latest interactions. Four queries.

    Revenue is summed per currency, never across currencies: every month has a row in the customer's main
    currency (the one most of the window's revenue is in; the model's default when there is none), and a
    month with revenue in another currency has a row for it too. `revenue_total` is in the main currency."""
    now = now or timezone.now()
    customer = Customer.objects.filter(pk=customer_id).first()
    if customer is None:
        raise NotFound("No such customer.", code="customer_not_found")
    months = _month_starts(now, HISTORY_MONTHS)
    revenue: dict[tuple[date, str], Decimal] = {}
    for row in (
        RevenueEntry.objects.filter(customer_id=customer_id, period__gte=months[0], period__lte=now.date())
        .annotate(month=TruncMonth("period"))
        .values("month", "currency")
        .annotate(amount=Sum("amount"))
        .order_by("month", "currency")
    ):
        month = row["month"].date() if isinstance(row["month"], datetime) else row["month"]
        revenue[(month, row["currency"])] = Decimal(row["amount"]).quantize(CENTS)
    per_currency: dict[str, Decimal] = {}
    for (_, currency), amount in revenue.items():
        per_currency[currency] = per_currency.get(currency, Decimal("0.00")) + amount
    default = RevenueEntry._meta.get_field("currency").default
    main = max(sorted(per_currency), key=lambda c: per_currency[c]) if per_currency else default
    by_month = []
    for month in months:
        by_month.append({"month": month, "amount": revenue.get((month, main), Decimal("0.00")), "currency": main})
        by_month.extend(
            {"month": m, "amount": amount, "currency": currency}
            for (m, currency), amount in sorted(revenue.items())
            if m == month and currency != main
        )
    mix_rows = list(
        Interaction.objects.filter(
            customer_id=customer_id, occurred_at__gte=now - timedelta(days=CHANNEL_MIX_DAYS), occurred_at__lte=now
        )
        .values("channel")
        .annotate(count=Count("id"), last_at=Max("occurred_at"))
        .order_by("-count", "channel")
    )
    total = sum(row["count"] for row in mix_rows)
    mix = [{**row, "share": round(row["count"] / total, 4)} for row in mix_rows]
    last = list(Interaction.objects.filter(customer_id=customer_id).order_by("-occurred_at", "-id")[:LAST_INTERACTIONS])
    return CustomerDetail(
        customer=customer,
        revenue_currency=main,
        revenue_by_month=by_month,
        revenue_total=per_currency.get(main, Decimal("0.00")),
        channel_mix=mix,
        last_interactions=last,
    )
