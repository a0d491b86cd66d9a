"""The set-based scoring run equals the plain Python reference (SQLite and PostgreSQL), for a full build and
for incremental runs with new days and late (stale) data."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pytest

from loyalty.ingestion.services.ingest import ingest_rows
from loyalty.ingestion.services.validation import rows_validate
from loyalty.models import CustomerMetrics, Interaction, RevenueEntry, ScoringState
from loyalty.segmentation.models import RunStatus
from loyalty.segmentation.services.rollups import (
    rollups_apply_pending,
    rollups_rebuild,
    rollups_refresh_interactions,
    rollups_refresh_revenue,
)
from loyalty.segmentation.services.scoring import (
    ALL_CHANNELS,
    scoring_model_create,
    scoring_run_create,
    scoring_run_execute,
)
from tests.factories import CustomerFactory
from tests.loyalty.scoring.reference import reference_metrics

AS_OF = date(2026, 6, 30)


def _at(day: date, hour: int = 12) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=UTC)


def _population(rng: random.Random, n: int = 40):
    customers = [CustomerFactory() for _ in range(n)]
    interactions, revenue = [], []
    serial = 0
    for customer in customers:
        for _ in range(rng.choice([0, 1, 3, 8, 15])):
            serial += 1
            day = AS_OF - timedelta(days=rng.randint(-5, 400))
            channel = rng.choice(ALL_CHANNELS)
            interactions.append((customer.id, channel, day))
            Interaction.objects.create(
                customer=customer, channel=channel, occurred_at=_at(day, rng.randint(0, 23)), external_id=f"i{serial}"
            )
        for month in range(rng.choice([0, 3, 14])):
            serial += 1
            period = date(2025 + (month + 5) // 12, (month + 5) % 12 + 1, 1)
            amount = Decimal(rng.randint(0, 20000)) / 100
            revenue.append((customer.id, period, amount))
            RevenueEntry.objects.create(customer=customer, period=period, amount=amount, external_id=f"r{serial}")
    return customers, interactions, revenue


def _assert_equal(run, expected: dict[int, dict]) -> None:
    rows = {m.customer_id: m for m in CustomerMetrics.objects.filter(scoring_run=run)}
    assert set(rows) == set(expected)
    for customer_id, exp in expected.items():
        got = rows[customer_id]
        # Exact: activity and score are quantized before ranking, so the summation order does not matter.
        assert {f: getattr(got, f) for f in exp} == exp, customer_id


@pytest.mark.django_db
def test_full_and_incremental_runs_equal_the_python_reference():
    rng = random.Random(20260630)
    customers, interactions, revenue = _population(rng)
    rollups_rebuild()
    model = scoring_model_create(name="ref", channel_weights={"social": 1.5, "email": 0.5})
    ids = [c.id for c in customers]

    run = scoring_run_create(scoring_model=model, as_of=_at(AS_OF), enqueue=False)
    run = scoring_run_execute(run_id=run.pk)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.customers_scored == len(ids)
    assert run.timings["state_mode"] == "rebuild"
    _assert_equal(
        run, reference_metrics(customer_ids=ids, interactions=interactions, revenue=revenue, model=model, as_of=AS_OF)
    )

    # Three new days of interactions and revenue, one new customer, and a late interaction for an old day.
    later = AS_OF + timedelta(days=3)
    newcomer = CustomerFactory()
    ids.append(newcomer.id)
    for n, (customer, day) in enumerate(
        [(customers[0], AS_OF + timedelta(days=1)), (customers[1], later), (newcomer, later)]
    ):
        Interaction.objects.create(customer=customer, channel="app", occurred_at=_at(day), external_id=f"new{n}")
        interactions.append((customer.id, "app", day))
    RevenueEntry.objects.create(customer=customers[2], period=later, amount=Decimal("12.34"), external_id="rnew")
    revenue.append((customers[2].id, later, Decimal("12.34")))
    late_day = AS_OF - timedelta(days=20)
    Interaction.objects.create(customer=customers[3], channel="store", occurred_at=_at(late_day), external_id="late")
    interactions.append((customers[3].id, "store", late_day))
    rollups_refresh_interactions(
        customer_ids=[c.id for c in customers[:2]] + [newcomer.id], date_from=AS_OF + timedelta(days=1), date_to=later
    )
    rollups_refresh_interactions(customer_ids=[customers[3].id], date_from=late_day, date_to=late_day)
    rollups_refresh_revenue(customer_ids=[customers[2].id], date_from=later, date_to=later)
    assert ScoringState.objects.get(scoring_model=model, customer=customers[3]).stale is True
    assert ScoringState.objects.get(scoring_model=model, customer=customers[0]).stale is False

    run2 = scoring_run_execute(run_id=scoring_run_create(scoring_model=model, as_of=_at(later), enqueue=False).pk)
    assert run2.status == RunStatus.SUCCEEDED, run2.error
    assert run2.timings["state_mode"] == "incremental"
    assert run2.timings["state_recomputed"] == 2  # the stale customer and the newcomer
    _assert_equal(
        run2, reference_metrics(customer_ids=ids, interactions=interactions, revenue=revenue, model=model, as_of=later)
    )

    # A week later with no new data: everything decays lazily, revenue leaves the window.
    week_later = later + timedelta(days=40)
    run3 = scoring_run_execute(run_id=scoring_run_create(scoring_model=model, as_of=_at(week_later), enqueue=False).pk)
    _assert_equal(
        run3,
        reference_metrics(customer_ids=ids, interactions=interactions, revenue=revenue, model=model, as_of=week_later),
    )


@pytest.mark.django_db
def test_rows_ingested_after_a_run_reach_the_next_incremental_run():
    """Through the ingest service (on PostgreSQL: rollup deltas; elsewhere: recomputed cells), not by hand."""
    rng = random.Random(7)
    customers, interactions, revenue = _population(rng, n=12)
    rollups_rebuild()
    model = scoring_model_create(name="ingested")
    scoring_run_execute(run_id=scoring_run_create(scoring_model=model, as_of=_at(AS_OF), enqueue=False).pk)
    later, late_day = AS_OF + timedelta(days=2), AS_OF - timedelta(days=30)
    new = [(customers[0], "social", later), (customers[0], "social", later), (customers[3], "store", late_day)]
    for batch in (new[:2], new[2:]):  # the new day, then a late row for an old day
        ingest_rows(
            kind="interactions",
            rows=rows_validate(
                "interactions",
                [
                    {
                        "external_id": f"new-{customer.id}-{n}",
                        "customer_external_id": customer.external_id,
                        "channel": channel,
                        "occurred_at": f"{day.isoformat()}T08:00:00Z",
                    }
                    for n, (customer, channel, day) in enumerate(batch)
                ],
            ),
        )
    interactions += [(customer.id, channel, day) for customer, channel, day in new]
    ingest_rows(
        kind="revenue",
        rows=rows_validate(
            "revenue",
            [
                {
                    "external_id": "rnew",
                    "customer_external_id": customers[2].external_id,
                    "period": str(later),
                    "amount": "99.99",
                }
            ],
        ),
    )
    revenue.append((customers[2].id, later, Decimal("99.99")))
    rollups_apply_pending()  # on PostgreSQL batches of new rows (and their stale marks) apply after commit
    stale = set(ScoringState.objects.filter(scoring_model=model, stale=True).values_list("customer_id", flat=True))
    assert stale == {customers[3].id}

    run = scoring_run_execute(run_id=scoring_run_create(scoring_model=model, as_of=_at(later), enqueue=False).pk)
    assert (run.status, run.timings["state_mode"], run.timings["state_recomputed"]) == ("succeeded", "incremental", 1)
    ids = [c.id for c in customers]
    _assert_equal(
        run, reference_metrics(customer_ids=ids, interactions=interactions, revenue=revenue, model=model, as_of=later)
    )


@pytest.mark.django_db
def test_equal_activity_summed_in_different_orders_ties_exactly():
    """A's activity is rolled forward from the first run (D * 2^(-d/H) + new), B (new after the first run) gets
    the same interactions summed from the rollups: unquantized, the two floats differ in the last bit
    (1.4420318476502458 and 1.442031847650246) and B would rank above A. Quantized, they tie."""
    model = scoring_model_create(name="ties")
    first_day, later = AS_OF - timedelta(days=100), AS_OF + timedelta(days=6)
    a, other = CustomerFactory(), CustomerFactory()
    Interaction.objects.create(customer=a, channel="phone", occurred_at=_at(first_day), external_id="a1")
    Interaction.objects.create(customer=other, channel="phone", occurred_at=_at(AS_OF), external_id="o1")
    rollups_rebuild()
    scoring_run_execute(run_id=scoring_run_create(scoring_model=model, as_of=_at(AS_OF), enqueue=False).pk)
    b = CustomerFactory()
    for customer, day, ext in ((a, later, "a2"), (b, first_day, "b1"), (b, later, "b2")):
        Interaction.objects.create(customer=customer, channel="phone", occurred_at=_at(day), external_id=ext)
    rollups_refresh_interactions(customer_ids=[a.id], date_from=later, date_to=later)
    rollups_refresh_interactions(customer_ids=[b.id], date_from=first_day, date_to=later)

    run = scoring_run_execute(run_id=scoring_run_create(scoring_model=model, as_of=_at(later), enqueue=False).pk)

    assert (run.timings["state_mode"], run.timings["state_recomputed"]) == ("incremental", 1)  # b only
    metrics = {m.customer_id: m for m in CustomerMetrics.objects.filter(scoring_run=run)}
    assert metrics[a.id].decayed_activity == metrics[b.id].decayed_activity == 1.442032
    assert metrics[a.id].engagement_percentile == metrics[b.id].engagement_percentile == 50.0
    assert metrics[a.id].engagement_score == metrics[b.id].engagement_score
    interactions = [(a.id, "phone", first_day), (a.id, "phone", later), (other.id, "phone", AS_OF)]
    interactions += [(b.id, "phone", first_day), (b.id, "phone", later)]
    _assert_equal(
        run,
        reference_metrics(
            customer_ids=[a.id, other.id, b.id], interactions=interactions, revenue=[], model=model, as_of=later
        ),
    )
