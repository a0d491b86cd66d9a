from __future__ import annotations

from datetime import date

import pytest
from django.core.management import call_command
from django.db.models import Count, Max, Sum

from demo.data import CHANNEL_SHARES, demo_data_generate, demo_window
from loyalty.models import Customer, Interaction, RevenueEntry

AS_OF = date(2025, 6, 30)


def _snapshot() -> tuple[list, list, list]:
    customers = list(
        Customer.objects.order_by("external_id").values_list(
            "external_id", "name", "email", "birth_year", "region", "attributes", "joined_at", "status", "churned_at"
        )
    )
    revenue = list(
        RevenueEntry.objects.order_by("external_id").values_list("external_id", "customer__external_id", "amount")
    )
    interactions = list(
        Interaction.objects.order_by("external_id").values_list(
            "external_id", "customer__external_id", "channel", "occurred_at"
        )
    )
    return customers, revenue, interactions


@pytest.mark.django_db
def test_same_seed_gives_the_same_population_and_another_seed_another():
    counts = demo_data_generate(customers=300, seed=7, as_of=AS_OF)
    first = _snapshot()
    assert counts == {"customers": 300, "revenue_entries": len(first[1]), "interactions": len(first[2])}
    Customer.objects.all().delete()

    demo_data_generate(customers=300, seed=7, as_of=AS_OF)
    assert _snapshot() == first

    Customer.objects.all().delete()
    demo_data_generate(customers=300, seed=8, as_of=AS_OF)
    assert _snapshot()[0] != first[0]


@pytest.mark.django_db
def test_second_run_adds_nothing():
    demo_data_generate(customers=50, seed=1, as_of=AS_OF)
    before = (Customer.objects.count(), RevenueEntry.objects.count(), Interaction.objects.count())
    counts = demo_data_generate(customers=50, seed=1, as_of=AS_OF)
    assert counts == {"customers": 0, "revenue_entries": 0, "interactions": 0}
    assert (Customer.objects.count(), RevenueEntry.objects.count(), Interaction.objects.count()) == before


@pytest.mark.django_db
def test_population_is_realistic():
    n = 3000
    demo_data_generate(customers=n, seed=42, as_of=AS_OF)
    start, end = demo_window(AS_OF)
    assert Customer.objects.count() == n

    # Channel usage shares from the field research (sampling noise on 3000 customers: a few points).
    for channel, share in CHANNEL_SHARES.items():
        users = Interaction.objects.filter(channel=channel).values("customer").distinct().count()
        assert abs(users / n - share) < 0.04, (channel, users / n)

    # Heavy tail: the top fifth of customers by revenue brings more than half of it.
    totals = sorted(
        (row["total"] for row in RevenueEntry.objects.values("customer").annotate(total=Sum("amount"))), reverse=True
    )
    assert sum(totals[: len(totals) // 5]) > sum(totals) / 2

    # 12 months of history, nothing in the future, nothing after a customer churned.
    assert Interaction.objects.filter(occurred_at__lt=start).count() == 0
    assert Interaction.objects.filter(occurred_at__gt=end).count() == 0
    assert RevenueEntry.objects.values("period").distinct().count() == 12
    churned = Customer.objects.filter(status=Customer.Status.CHURNED)
    assert 0.05 * n < churned.count() < 0.13 * n
    late = churned.annotate(last=Max("interactions__occurred_at")).filter(last__gt=end).count()
    assert late == 0
    for customer in churned.annotate(last=Max("interactions__occurred_at")).exclude(last=None)[:50]:
        assert customer.last <= customer.churned_at

    # Weekly interactors interact several times as often as monthly ones.
    weekly = Customer.objects.filter(attributes__weekly_interactor=True, status="active", joined_at__lt=start)
    monthly = Customer.objects.filter(attributes__weekly_interactor=False, status="active", joined_at__lt=start)
    per_weekly = weekly.annotate(n=Count("interactions")).aggregate(s=Sum("n"))["s"] / weekly.count()
    per_monthly = monthly.annotate(n=Count("interactions")).aggregate(s=Sum("n"))["s"] / monthly.count()
    assert per_weekly > 3 * per_monthly
    assert 0.15 * n < Customer.objects.filter(attributes__weekly_interactor=True).count() < 0.3 * n

    ages = [AS_OF.year - y for y in Customer.objects.values_list("birth_year", flat=True)]
    assert min(ages) >= 18 and max(ages) <= 80
    assert Customer.objects.values("region").distinct().count() == 6


@pytest.mark.django_db
def test_command_reports_counts(capsys):
    call_command("seed_demo", customers=20, seed=3, as_of=AS_OF, no_progress=True)
    out = capsys.readouterr().out
    assert Customer.objects.count() == 20
    assert f"Created 20 customers, {RevenueEntry.objects.count()} revenue entries" in out
