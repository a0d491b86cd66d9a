"""Synthetic populations with a known effect, built with bulk inserts (a few thousand rows, fast)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from loyalty.models import Customer, Interaction, Membership, RetentionOutcome, RevenueEntry
from tests.factories import ProgrammeFactory, TierFactory

JOINED = datetime(2020, 1, 1, tzinfo=UTC)
ENROLLED = datetime(2024, 1, 10, tzinfo=UTC)
AS_OF = datetime(2025, 3, 1, tzinfo=UTC)  # 416 days after enrolment: every horizon up to 12 months is evaluable


@dataclass
class Population:
    programme: object
    tiers: list
    treatment: list[Membership] = field(default_factory=list)
    control: list[Membership] = field(default_factory=list)


def build(
    *,
    n_treatment: int,
    n_control: int,
    retention_treatment: float,
    retention_control: float,
    seed: int = 7,
    holdout_percent: int = 50,
    take_up: tuple[float, float] | None = None,
    enrolled_at: datetime = ENROLLED,
    churn_within_days: int = 360,
    prefix: str = "S",
    programme=None,
    tiers=None,
) -> Population:
    """Members churn (a `churned` outcome) with probability 1 - retention at a uniform day within
    `churn_within_days`; the others stay active customers. `take_up=(p_if_stays, p_if_churns)`: the share of
    treatment members with a concierge interaction, by whether they would stay (self-selection)."""
    rng = random.Random(seed)
    programme = programme or ProgrammeFactory(holdout_percent=holdout_percent)
    tiers = tiers or [
        TierFactory(programme=programme, rank=1, name="Silver"),
        TierFactory(programme=programme, rank=2, name="Gold"),
    ]
    pop = Population(programme=programme, tiers=tiers)
    specs = [("treatment", i) for i in range(n_treatment)] + [("control", i) for i in range(n_control)]
    customers = Customer.objects.bulk_create(
        [Customer(external_id=f"{prefix}{programme.pk}-{g[0]}{i}", name=f"{g} {i}", joined_at=JOINED) for g, i in specs]
    )
    memberships = []
    for (group, i), customer in zip(specs, customers, strict=True):
        tier = tiers[i % len(tiers)]
        memberships.append(
            Membership(
                programme=programme,
                customer=customer,
                group=group,
                status="active" if group == "treatment" else "holdout",
                tier=tier if group == "treatment" else None,
                shadow_tier=tier if group == "control" else None,
                enrolled_at=enrolled_at,
                assignment_seed=programme.seed,
                assignment_bucket=50.0,
            )
        )
    memberships = Membership.objects.bulk_create(memberships)
    outcomes, interactions = [], []
    for m in memberships:
        retention = retention_treatment if m.group == "treatment" else retention_control
        stays = rng.random() < retention
        if not stays:
            day = rng.randint(1, churn_within_days)
            outcomes.append(
                RetentionOutcome(
                    membership=m, observed_at=enrolled_at + timedelta(days=day), outcome="churned", source="ingest"
                )
            )
        if take_up and m.group == "treatment" and rng.random() < (take_up[0] if stays else take_up[1]):
            interactions.append(
                Interaction(
                    customer_id=m.customer_id,
                    channel="concierge",
                    occurred_at=enrolled_at + timedelta(days=1),
                    external_id=f"i-{m.pk}",
                )
            )
        (pop.treatment if m.group == "treatment" else pop.control).append(m)
    RetentionOutcome.objects.bulk_create(outcomes)
    Interaction.objects.bulk_create(interactions)
    return pop


def add_revenue(pop: Population, *, pre: dict[int, Decimal], post_uplift: Decimal, months_after: int = 6) -> None:
    """Monthly revenue: `pre[customer_id]` for the 12 months before enrolment and the same plus
    `post_uplift` (treatment only) for `months_after` months after."""
    rows = []
    for m in pop.treatment + pop.control:
        base = pre[m.customer_id]
        for k in range(1, 13):
            period = (m.enrolled_at - timedelta(days=30 * k)).date().replace(day=1)
            ext = f"r-{m.pk}-p{k}"
            rows.append(RevenueEntry(customer_id=m.customer_id, period=period, amount=base, external_id=ext))
        for k in range(months_after):
            period = (m.enrolled_at + timedelta(days=30 * k + 25)).date()
            amount = base + (post_uplift if m.group == "treatment" else 0)
            ext = f"r-{m.pk}-a{k}"
            rows.append(RevenueEntry(customer_id=m.customer_id, period=period, amount=amount, external_id=ext))
    RevenueEntry.objects.bulk_create(rows, batch_size=2000)
    refresh_revenue_rollup(rows)


def refresh_revenue_rollup(rows: list[RevenueEntry]) -> None:
    """Rows written straight to the table bypass ingestion, which keeps the revenue rollup current (the impact
    report reads the rollup): recompute the rollup cells of their customers and periods."""
    from loyalty.segmentation.services.rollups import rollups_refresh_revenue

    if rows:
        rollups_refresh_revenue(
            customer_ids=sorted({r.customer_id for r in rows}),
            date_from=min(r.period for r in rows),
            date_to=max(r.period for r in rows),
        )
