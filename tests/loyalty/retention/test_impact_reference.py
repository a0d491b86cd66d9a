"""The report reads its per-member data once (the revenue rollup instead of the raw lines, numpy instead of SQL
aggregates): every figure must equal what the previous implementation (`reference_selectors`, one temporary
table of SQL over the raw revenue lines) gives on the same data, whole report for whole report."""

from __future__ import annotations

import random
from datetime import timedelta
from decimal import Decimal

import pytest

from loyalty.models import Customer, CustomerMetrics, Interaction, RetentionOutcome, ScoringModel, ScoringRun
from loyalty.retention import selectors
from loyalty.retention.services.impact import impact_report_compute
from tests.loyalty.retention import reference_selectors
from tests.loyalty.retention.population import AS_OF, ENROLLED, add_revenue, build

pytestmark = pytest.mark.django_db


def _both(monkeypatch, programme, as_of, horizons=(3, 6, 12)) -> tuple[dict, dict]:
    new = impact_report_compute(programme=programme, as_of=as_of, horizons=horizons)
    with monkeypatch.context() as patch:
        patch.setattr(selectors, "ImpactMembers", reference_selectors.ImpactMembers)
        old = impact_report_compute(programme=programme, as_of=as_of, horizons=horizons)
    new.pop("timings"), old.pop("timings")
    return new, old


def _mixed_population():
    """Two enrolment cohorts with take-up, revenue before and after enrolment (with the enrolment month's own
    bill and several lines on one day), corrected outcomes, customers churned without an outcome (before and
    after as_of), engagement scores at enrolment, ages and regions recorded at enrolment."""
    pop = build(
        n_treatment=260, n_control=240, retention_treatment=0.85, retention_control=0.78, seed=4, take_up=(0.6, 0.3)
    )
    late = build(
        n_treatment=90,
        n_control=90,
        retention_treatment=0.9,
        retention_control=0.8,
        seed=5,
        enrolled_at=ENROLLED + timedelta(days=75, hours=7, minutes=13, seconds=5, microseconds=250),
        prefix="L",
        programme=pop.programme,
        tiers=pop.tiers,
        take_up=(0.5, 0.5),
    )
    members = pop.treatment + pop.control + late.treatment + late.control
    rng = random.Random(2)
    pre = {m.customer_id: Decimal(rng.randint(2000, 40000)) / 100 for m in members}
    both = type(pop)(programme=pop.programme, tiers=pop.tiers, treatment=pop.treatment + late.treatment)
    both.control = pop.control + late.control
    add_revenue(both, pre=pre, post_uplift=Decimal("3.17"), months_after=14)
    from loyalty.models import RevenueEntry
    from tests.loyalty.retention.population import refresh_revenue_rollup

    extra = RevenueEntry.objects.bulk_create(
        RevenueEntry(
            customer_id=m.customer_id,
            period=(m.enrolled_at + timedelta(days=k)).date().replace(day=1)
            if k == 0
            else (m.enrolled_at + timedelta(days=k)).date(),
            amount=Decimal(rng.randint(1, 9999)) / 100,
            external_id=f"x-{m.pk}-{k}-{j}",
        )
        for m in members[::3]
        for k in (0, 91, 183, 365)
        for j in range(2)
    )
    refresh_revenue_rollup(extra)
    # Corrections: a churn that was wrong, superseded by a retained outcome; an outcome after as_of.
    wrong = RetentionOutcome.objects.filter(membership__programme=pop.programme, outcome="churned")[:20]
    for o in wrong:
        RetentionOutcome.objects.create(
            membership_id=o.membership_id,
            observed_at=o.observed_at + timedelta(days=5),
            outcome="retained",
            source="manual",
            supersedes=o,
        )
    for m in late.control[:15]:
        RetentionOutcome.objects.create(
            membership=m, observed_at=AS_OF + timedelta(days=3), outcome="churned", source="ingest"
        )
    # Customers churned in the CRM without an outcome: before as_of, and after it.
    quiet = [m for m in members if not RetentionOutcome.objects.filter(membership=m).exists()]
    for m in quiet[:12]:
        Customer.objects.filter(pk=m.customer_id).update(
            status="churned", churned_at=m.enrolled_at + timedelta(days=200)
        )
    for m in quiet[12:20]:
        Customer.objects.filter(pk=m.customer_id).update(status="churned", churned_at=AS_OF + timedelta(days=10))
    # Programme use before the enrolment (not take-up) and after as_of (not yet).
    Interaction.objects.bulk_create(
        [
            Interaction(
                customer_id=m.customer_id,
                channel="event",
                occurred_at=m.enrolled_at - timedelta(hours=1),
                external_id=f"b-{m.pk}",
            )
            for m in members[1::7]
        ]
        + [
            Interaction(
                customer_id=m.customer_id,
                channel="concierge",
                occurred_at=AS_OF + timedelta(days=1),
                external_id=f"a-{m.pk}",
            )
            for m in members[2::7]
        ]
    )
    # Engagement at enrolment from the latest scoring run before it; age and region recorded at enrolment.
    model = ScoringModel.objects.create(name="ref")
    run = ScoringRun.objects.create(scoring_model=model, as_of=ENROLLED - timedelta(days=2), status="succeeded")
    CustomerMetrics.objects.bulk_create(
        CustomerMetrics(
            scoring_run=run,
            customer_id=m.customer_id,
            revenue_minor=0,
            revenue_rank=1,
            revenue_percentile=50,
            engagement_score=rng.choice([0, 19.999, 20, 45.5, 60, 79.9, 80, 100, rng.uniform(0, 100)]),
            channels_used=1,
            active_weeks=1,
            engagement_percentile=50,
        )
        for m in members[::2]
    )
    from loyalty.models import Membership

    for i, m in enumerate(members[::4]):
        Membership.objects.filter(pk=m.pk).update(
            region_at_enrolment=("north", "south", "", "east")[i % 4],
            age_at_enrolment=(None, 19, 25, 33, 47, 58, 65, 71)[i % 8],
        )
    return pop.programme


@pytest.mark.parametrize("days_before", [0, 200])
def test_the_report_equals_the_previous_implementation_figure_for_figure(monkeypatch, days_before):
    programme = _mixed_population()
    new, old = _both(monkeypatch, programme, AS_OF - timedelta(days=days_before))
    assert new == old
    assert new["take_up"]["took_up"] > 0 and new["revenue"]["cuped"][0]["available"] is True
    assert len(new["engagement"]["bands"]) == 6 and len(new["by_region"]) == 4 and len(new["by_cohort"]) == 2


def test_members_whose_ids_are_spread_out_give_the_previous_figures(monkeypatch):
    """With the members' ids too spread out for a range of ids to filter the other tables (as here, forced), each
    read is limited by a semi-join with the memberships and the rows find their member by a search."""
    programme = _mixed_population()
    monkeypatch.setattr(selectors, "_DENSE", 0)
    new, old = _both(monkeypatch, programme, AS_OF)
    assert new == old and new["take_up"]["took_up"] > 0 and len(new["engagement"]["bands"]) == 6


def test_a_programme_simulated_through_ingestion_gives_the_previous_figures(monkeypatch):
    from tests.loyalty.retention.simulate import simulate_programme

    sim = simulate_programme(customers=300, effect=0.1, seed=12, take_up=0.5, revenue_effect=4.0)
    for as_of in (sim.end, sim.start + timedelta(days=200)):
        new, old = _both(monkeypatch, sim.programme, as_of, horizons=(1, 3, 6, 12, 24))
        assert new == old
    assert new["groups"]["treatment"] + new["groups"]["control"] == 300


def test_an_empty_programme_gives_the_previous_figures(monkeypatch):
    from tests.factories import ProgrammeFactory

    new, old = _both(monkeypatch, ProgrammeFactory(), AS_OF)
    assert new == old and new["groups"]["treatment"] == 0


def test_revenue_of_a_member_enrolled_between_the_two_reads_changes_nothing(monkeypatch):
    """Nested in a transaction, the members and the revenue statements read their own snapshots: revenue rows of a
    customer enrolled in between (here: before the revenue read) belong to no member read, and are left out."""
    from loyalty.models import RevenueEntry
    from tests.factories import CustomerFactory, MembershipFactory
    from tests.loyalty.retention.population import refresh_revenue_rollup

    pop = build(n_treatment=40, n_control=40, retention_treatment=0.9, retention_control=0.8, seed=3)
    add_revenue(pop, pre={m.customer_id: Decimal(30) for m in pop.treatment + pop.control}, post_uplift=Decimal(1))
    before = impact_report_compute(programme=pop.programme, as_of=AS_OF)
    derive = selectors.ImpactMembers._derive

    def derive_then_enrol(self, arrays):
        derive(self, arrays)
        for k in range(3):  # ids above every member's: without the check they would land on the last member
            customer = CustomerFactory()
            MembershipFactory(programme=pop.programme, customer=customer, tier=pop.tiers[0], enrolled_at=ENROLLED)
            rows = [RevenueEntry(customer=customer, period=ENROLLED.date(), amount=Decimal(900), external_id=f"n{k}")]
            refresh_revenue_rollup(RevenueEntry.objects.bulk_create(rows))

    monkeypatch.setattr(selectors.ImpactMembers, "_derive", derive_then_enrol)
    during = impact_report_compute(programme=pop.programme, as_of=AS_OF)
    before.pop("timings"), during.pop("timings")
    assert during == before


@pytest.mark.postgres
def test_revenue_ingested_but_not_yet_rolled_up_is_in_the_report(monkeypatch):
    """On PostgreSQL a batch of new revenue lines reaches the rollup after commit, by a task; the report applies
    what is still pending first, so it counts the same revenue as a read of the raw lines."""
    from loyalty.ingestion.services.ingest import ingest_rows
    from loyalty.ingestion.services.validation import rows_validate
    from loyalty.models import RevenueDayRollup, RollupBatch

    pop = build(n_treatment=30, n_control=30, retention_treatment=0.9, retention_control=0.8, seed=5)
    rows = [
        {
            "external_id": f"p-{m.pk}-{k}",
            "customer_external_id": m.customer.external_id,
            "period": (ENROLLED + timedelta(days=30 * k + 5)).date().isoformat(),
            "amount": "42.00" if m.group == "treatment" else "40.00",
        }
        for m in pop.treatment + pop.control
        for k in range(3)
    ]
    ingest_rows(kind="revenue", rows=rows_validate("revenue", rows), checked=True)
    batch = RollupBatch.objects.get()  # on-commit callbacks do not run in this test: the batch is pending
    assert (batch.applied_at, RevenueDayRollup.objects.count()) == (None, 0)
    new, old = _both(monkeypatch, pop.programme, AS_OF)
    assert new == old
    batch.refresh_from_db()
    assert batch.applied_at is not None
    assert RevenueDayRollup.objects.count() == 180
