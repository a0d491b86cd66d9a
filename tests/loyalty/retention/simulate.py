"""Programmes with a known effect, pushed through the product's own pipeline like real data.

Customers, their revenue and channel interactions arrive through ingestion (`ingest_rows`); a scoring run and a
segment run select them; `enrolment_run` splits them into treatment and control; programme use is recorded with
`interaction_record`; churn arrives through the CRM's customer feed (status `churned`), which derives the
retention outcomes and ends the memberships. The truth is known:

- retention: a customer who would churn does so on a uniform day in 1..`CHURN_WITHIN_DAYS`; treatment raises
  the 12-month retention from `base_retention` to `base_retention + effect`, so the true uplift at a horizon of
  h days is `effect * min(h, CHURN_WITHIN_DAYS) / CHURN_WITHIN_DAYS`;
- revenue: every customer pays a constant monthly bill (its own level), treatment adds `revenue_effect` a month
  while a customer; churned customers stop paying.

Used by the fast suite test (a few hundred customers) and by `bench/impact_truth.py` (hundreds of replicates).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

CHURN_WITHIN_DAYS = 360
START = datetime(2024, 1, 10, 9, tzinfo=UTC)


@dataclass
class Simulated:
    programme: object
    start: datetime
    end: datetime
    effect: float
    revenue_effect: float
    take_up: float = 0.5

    def true_uplift(self, months: int) -> float:
        from loyalty.retention.selectors import horizon_days

        return self.effect * min(horizon_days(months), CHURN_WITHIN_DAYS) / CHURN_WITHIN_DAYS


def _month_first(d: date, months_back: int) -> date:
    k = d.year * 12 + d.month - 1 - months_back
    return date(k // 12, k % 12 + 1, 1)


def simulate_programme(
    *,
    customers: int,
    effect: float,
    seed: int,
    base_retention: float = 0.80,
    holdout_percent: int = 50,
    take_up: float = 0.5,
    revenue_effect: float = 0.0,
    start: datetime = START,
    followup_days: int = 400,
    name: str | None = None,
) -> Simulated:
    from loyalty.customers.models import Customer
    from loyalty.ingestion.services.ingest import ingest_rows
    from loyalty.ingestion.services.interactions import interaction_record
    from loyalty.ingestion.services.validation import rows_validate
    from loyalty.programmes.models import Membership
    from loyalty.programmes.services.enrolment import enrolment_run, enrolment_start
    from loyalty.programmes.services.programmes import programme_create, tier_create
    from loyalty.segmentation.services.scoring import scoring_model_default, scoring_run_create, scoring_run_execute
    from loyalty.segmentation.services.segments import segment_create, segment_run_create, segment_run_execute

    rng = random.Random(seed)
    name = name or f"Sim {seed}"
    end = start + timedelta(days=followup_days)
    ids = [f"{name}-c{i}" for i in range(customers)]
    bill = {ext: rng.randint(20, 200) for ext in ids}
    before = start - timedelta(days=30)
    ingest_rows(
        kind="customers",
        rows=rows_validate(
            "customers",
            [
                {
                    "external_id": ext,
                    "name": ext,
                    "birth_year": rng.randint(1945, 2000),
                    "region": rng.choice(["north", "south"]),
                    "joined_at": datetime(2018, 1, 1, tzinfo=UTC).isoformat(),
                }
                for ext in ids
            ],
        ),
        now=before,
    )
    pre = [
        {
            "external_id": f"{ext}-pre{k}",
            "customer_external_id": ext,
            "period": _month_first(start.date(), k).isoformat(),
            "amount": str(bill[ext]),
        }
        for ext in ids
        for k in range(1, 13)
    ]
    ingest_rows(kind="revenue", rows=rows_validate("revenue", pre), now=before)
    channels = ["phone", "online", "store", "email", "social", "app"]
    touches = [
        {
            "external_id": f"{ext}-t{k}",
            "customer_external_id": ext,
            "channel": rng.choice(channels),
            "occurred_at": (start - timedelta(days=rng.randint(1, 80))).isoformat(),
        }
        for ext in ids
        for k in range(rng.randint(0, 6))
    ]
    if touches:
        ingest_rows(kind="interactions", rows=rows_validate("interactions", touches), now=before)

    scoring = scoring_run_execute(
        run_id=scoring_run_create(scoring_model=scoring_model_default(), as_of=start, enqueue=False).pk
    )
    segment = segment_create(name=f"{name} segment", rule={"all": [{"field": "status", "op": "eq", "value": "active"}]})
    run = segment_run_execute(run_id=segment_run_create(segment=segment, scoring_run=scoring, enqueue=False).pk)
    programme = programme_create(
        name=name, holdout_percent=holdout_percent, qualifying_metric="revenue_percentile", seed=f"seed-{seed}"
    )
    tier_create(programme=programme, rank=1, name="Member", threshold=0)
    enrolment, _ = enrolment_start(programme=programme, segment_run=run)
    enrolment_run(enrolment_id=enrolment.pk, now=start)

    memberships = list(Membership.objects.filter(programme=programme).select_related("customer"))
    churn_rows, post = [], []
    for m in memberships:
        ext = m.customer.external_id
        treated = m.group == Membership.Group.TREATMENT
        stays = rng.random() < base_retention + (effect if treated else 0.0)
        churned_at = None if stays else start + timedelta(days=rng.randint(1, CHURN_WITHIN_DAYS), hours=1)
        if treated and rng.random() < take_up:
            interaction_record(
                customer=m.customer,
                channel="concierge",
                kind="request_created",
                occurred_at=start + timedelta(days=rng.randint(1, 20)),
                external_id=f"{ext}-use",
            )
        monthly = bill[ext] + (revenue_effect if treated else 0.0)
        for k in range(13):
            period = _month_first(start.date(), -k - 1)  # bills of the months after the enrolment month
            if churned_at and datetime(period.year, period.month, period.day, tzinfo=UTC) > churned_at:
                break
            if datetime(period.year, period.month, period.day, tzinfo=UTC) > end:
                break
            post.append(
                {
                    "external_id": f"{ext}-post{k}",
                    "customer_external_id": ext,
                    "period": period.isoformat(),
                    "amount": f"{monthly:.2f}",
                }
            )
        if churned_at:
            churn_rows.append((ext, churned_at))
    if post:
        ingest_rows(kind="revenue", rows=rows_validate("revenue", post), now=end)
    customers_by_ext = {
        c["external_id"]: c
        for c in Customer.objects.filter(external_id__in=[e for e, _ in churn_rows]).values(
            "external_id", "name", "joined_at"
        )
    }
    # The CRM's churn feed, month by month, processed at the end of each month.
    by_month: dict[tuple[int, int], list] = {}
    for ext, at in churn_rows:
        by_month.setdefault((at.year, at.month), []).append((ext, at))
    for (year, month), batch in sorted(by_month.items()):
        sent = datetime(year + (month == 12), month % 12 + 1, 1, 6, tzinfo=UTC)
        rows = [
            {
                "external_id": ext,
                "name": customers_by_ext[ext]["name"],
                "joined_at": customers_by_ext[ext]["joined_at"].isoformat(),
                "status": "churned",
                "churned_at": at.isoformat(),
            }
            for ext, at in batch
        ]
        ingest_rows(kind="customers", rows=rows_validate("customers", rows), now=min(sent, end))
    return Simulated(
        programme=programme, start=start, end=end, effect=effect, revenue_effect=revenue_effect, take_up=take_up
    )


def primary_counts_replica(
    *,
    seed: int,
    customer_ids: list[int],
    effect: float,
    base_retention: float = 0.80,
    holdout_percent: int = 50,
    take_up: float = 0.5,
) -> list[int]:
    """The 12-month retention counts [n_t, retained_t, n_c, retained_c] that `simulate_programme(seed=...)`
    produces, recomputed from its random stream without the database: the same draws in the same order, the
    programme's own assignment hash. `customer_ids` are the enrolled customers' ids in membership order.

    It lets the primary test's false-positive rate be measured over tens of thousands of seeds
    (`bench/impact_truth.py --replica N`), where the pipeline itself manages a few hundred an hour; the suite
    checks that it equals what the pipeline reports."""
    from loyalty.programmes.services.assignment import assignment_bucket_int, holdout_cutoff

    rng = random.Random(seed)
    n = len(customer_ids)
    for _ in range(n):  # monthly bills
        rng.randint(20, 200)
    for _ in range(n):  # birth year and region
        rng.randint(1945, 2000)
        rng.choice(["north", "south"])
    for _ in range(n):  # interactions before the start: channel and day of each
        for _ in range(rng.randint(0, 6)):
            rng.choice(range(6))
            rng.randint(1, 80)
    cutoff = holdout_cutoff(holdout_percent)
    n_t = x_t = n_c = x_c = 0
    for customer_id in customer_ids:
        treated = assignment_bucket_int(f"seed-{seed}", customer_id) >= cutoff
        stays = rng.random() < base_retention + (effect if treated else 0.0)
        if not stays:
            rng.randint(1, CHURN_WITHIN_DAYS)
        if treated and rng.random() < take_up:
            rng.randint(1, 20)
        if treated:
            n_t, x_t = n_t + 1, x_t + stays
        else:
            n_c, x_c = n_c + 1, x_c + stays
    return [n_t, x_t, n_c, x_c]


def headline(report: dict, sim: Simulated) -> dict[str, tuple[float | None, float | None, float | None, float]]:
    """The headline figures of a report with their intervals and the truth: name -> (estimate, low, high, truth)."""
    out = {}
    for c in report["retention"]:
        out[f"ITT uplift {c['months']} months"] = (c["uplift"], c["ci_low"], c["ci_high"], sim.true_uplift(c["months"]))
    # The complier effect's estimand: the ITT effect over the share that takes the programme up.
    for h in report["take_up"]["by_horizon"]:
        if h["cace"] is not None:
            truth = sim.true_uplift(h["months"]) / sim.take_up
            out[f"Complier effect {h['months']} months"] = (h["cace"], h["cace_ci_low"], h["cace_ci_high"], truth)
    if sim.effect == 0 and sim.revenue_effect == 0:  # revenue truth known exactly only without any effect
        for r in report["revenue"]["cuped"]:
            if r.get("adjusted"):
                a = r["adjusted"]
                out[f"CUPED revenue {r['months']} months"] = (a["difference"], a["ci_low"], a["ci_high"], 0.0)
    return out
