"""The demo programme's life after enrolment: who took up the programme, who churned and when, and the
revenue and channel interactions of every customer until today (or until they churned).

A simulated but real effect: control members churn at `HAZARD["control"]` a month; treatment members who use
the programme (concierge or events) churn much less once they use it, those who never use it almost as much as
control. Engaged customers both churn less and use the programme more, so the naive users-versus-non-users
comparison overstates the effect (the dashboard says so); the randomised comparison does not.

The plan is deterministic (`random.Random(seed)`, customers in id order). Revenue and channel interactions are
written in batches like `demo.data` (the rollups are rebuilt afterwards); churn and programme use go through the
product's own services, see `setup_demo`.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from django.db import connection, transaction

from demo.data import CHANNEL_KINDS

# Monthly churn hazards (a month = 30.44 days).
HAZARD = {"none": 0.006, "control": 0.026, "treatment": 0.022, "user": 0.006}
TAKE_UP_BASE, TAKE_UP_PER_ENGAGEMENT = 0.40, 0.50  # P(take-up) = base + per_engagement * score / 100
FIRST_USE_MEAN_DAYS = 40
USE_EVERY_MEAN_DAYS = 75
USER_REVENUE_LIFT = 1.04  # members who use the programme spend a little more
DAY = timedelta(days=1)
MONTH_DAYS = 365.25 / 12


@dataclass
class Plan:
    customer_id: int
    external_id: str
    group: str  # "none", "treatment" or "control"
    weekly: bool
    channels: list[str]
    arpu: float
    engagement: float
    uses: list[datetime] = field(default_factory=list)  # programme use (concierge, events)
    churned_at: datetime | None = None


def _month_starts(after: datetime, until: datetime) -> list[date]:
    """First days of the months after `after`'s month, up to `until`."""
    y, m = after.year, after.month
    out = []
    while True:
        m += 1
        if m > 12:
            y, m = y + 1, 1
        first = date(y, m, 1)
        if first > until.date():
            return out
        out.append(first)


def _exp_days(rng: random.Random, monthly: float) -> float:
    rate = -math.log(1 - monthly) / MONTH_DAYS  # per day
    return rng.expovariate(rate)


def history_plan(*, programme_id: int, start: datetime, end: datetime, seed: int) -> list[Plan]:
    """Plan the life from `start` (the enrolment) to `end` of every customer active at `start`."""
    from loyalty.customers.models import Customer, Interaction, RevenueEntry
    from loyalty.programmes.models import Membership
    from loyalty.segmentation.models import CustomerMetrics, ScoringRun

    customers = list(
        Customer.objects.filter(status=Customer.Status.ACTIVE, joined_at__lt=start)
        .order_by("id")
        .values_list("id", "external_id", "attributes")
    )
    groups = dict(Membership.objects.filter(programme_id=programme_id).values_list("customer_id", "group"))
    revenue: dict[int, list[Decimal]] = defaultdict(list)
    for cid, amount in RevenueEntry.objects.filter(period__lt=start.date()).values_list("customer_id", "amount"):
        revenue[cid].append(amount)
    channels: dict[int, set[str]] = defaultdict(set)
    for cid, channel in (
        Interaction.objects.filter(occurred_at__lt=start).values_list("customer_id", "channel").distinct()
    ):
        channels[cid].add(channel)
    run = ScoringRun.objects.filter(as_of__lte=start).order_by("-as_of", "-id").first()
    scores = (
        dict(CustomerMetrics.objects.filter(scoring_run=run).values_list("customer_id", "engagement_score"))
        if run
        else {}
    )
    rng = random.Random(seed * 7919 + 1)
    plans = []
    for cid, ext, attributes in customers:
        amounts = revenue.get(cid) or [Decimal("20")]
        plan = Plan(
            customer_id=cid,
            external_id=ext,
            group=groups.get(cid, "none"),
            weekly=bool((attributes or {}).get("weekly_interactor")),
            channels=sorted(channels.get(cid, ())),
            arpu=float(sum(amounts)) / len(amounts),
            engagement=float(scores.get(cid) or 0),
        )
        # Programme use: treatment members only (control has no access), more likely when engaged.
        first_use = None
        if plan.group == "treatment" and rng.random() < TAKE_UP_BASE + TAKE_UP_PER_ENGAGEMENT * plan.engagement / 100:
            first_use = start + timedelta(days=rng.expovariate(1 / FIRST_USE_MEAN_DAYS))
        # Churn: piecewise exponential (the hazard drops at the first use). Engaged customers churn less.
        factor = 1.3 - 0.6 * plan.engagement / 100
        base = HAZARD["control" if plan.group == "control" else plan.group] * factor
        t = start + timedelta(days=_exp_days(rng, min(base, 0.5)))
        if first_use is not None and t > first_use:
            t = first_use + timedelta(days=_exp_days(rng, HAZARD["user"] * factor))
        if t < end - DAY:
            plan.churned_at = t.replace(microsecond=0)
        last = plan.churned_at or end
        if first_use is not None and first_use < last:
            use = first_use
            while use < last:
                plan.uses.append(use.replace(microsecond=0))
                use += timedelta(days=rng.expovariate(1 / USE_EVERY_MEAN_DAYS))
        plans.append(plan)
    return plans


def history_write(*, plans: list[Plan], start: datetime, end: datetime, seed: int) -> dict[str, int]:
    """Monthly billing lines and channel interactions from `start` to `end` (or the churn), in batches.
    External ids `<customer>-R<yyyymm>` and `<customer>-F<k>`: a second run writes nothing twice."""
    from loyalty.customers.models import Interaction, RevenueEntry

    rng = random.Random(seed * 7919 + 2)
    ops, qn = connection.ops, connection.ops.quote_name
    created = ops.adapt_datetimefield_value(datetime.now(UTC))
    months = _month_starts(start, end)
    revenue_rows, interaction_rows = [], []
    for plan in plans:
        last = plan.churned_at or end
        lift = USER_REVENUE_LIFT if plan.uses else 1.0
        for period in months:
            if period > last.date():
                break
            amount = Decimal(str(round(plan.arpu * lift * (0.85 + 0.3 * rng.random()), 2)))
            revenue_rows.append(
                (
                    plan.customer_id,
                    ops.adapt_datefield_value(period),
                    ops.adapt_decimalfield_value(amount, 14, 2),
                    "EUR",
                    "billing",
                    f"{plan.external_id}-R{period:%Y%m}",
                    created,
                )
            )
        if not plan.channels:
            continue
        span = (last - start).total_seconds()
        n = max(1, round(span / (604800.0 if plan.weekly else 2629800.0) * (1 + 0.5 * rng.random())))
        for k in range(1, n + 1):
            ch = plan.channels[int(rng.random() * len(plan.channels))]
            occurred = start + timedelta(seconds=span * (k - 1 + rng.random()) / n)
            interaction_rows.append(
                (
                    plan.customer_id,
                    ch,
                    ops.adapt_datetimefield_value(occurred),
                    CHANNEL_KINDS[ch],
                    f"{plan.external_id}-F{k}",
                )
            )
    existing_revenue = set(
        RevenueEntry.objects.filter(external_id__in=[r[5] for r in revenue_rows[:1]]).values_list(
            "external_id", flat=True
        )
    )
    if existing_revenue:  # written by an earlier run
        return {"revenue_entries": 0, "interactions": 0}
    with transaction.atomic(), connection.cursor() as cursor:
        for chunk in range(0, len(revenue_rows), 5000):
            cursor.executemany(
                f"INSERT INTO {qn(RevenueEntry._meta.db_table)} (customer_id, period, amount, currency, kind, "
                "external_id, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                revenue_rows[chunk : chunk + 5000],
            )
        for chunk in range(0, len(interaction_rows), 5000):
            cursor.executemany(
                f"INSERT INTO {qn(Interaction._meta.db_table)} (customer_id, channel, occurred_at, kind, external_id) "
                "VALUES (%s, %s, %s, %s, %s)",
                interaction_rows[chunk : chunk + 5000],
            )
    return {"revenue_entries": len(revenue_rows), "interactions": len(interaction_rows)}


def churn_feed_batches(plans: list[Plan], *, end: datetime) -> list[tuple[datetime, list[int]]]:
    """The CRM's monthly churn feed: (when the feed ran, customer ids that churned in the month before)."""
    by_month: dict[tuple[int, int], list[int]] = defaultdict(list)
    for plan in plans:
        if plan.churned_at is not None:
            by_month[(plan.churned_at.year, plan.churned_at.month)].append(plan.customer_id)
    batches = []
    for (y, m), ids in sorted(by_month.items()):
        y2, m2 = (y + 1, 1) if m == 12 else (y, m + 1)
        sent = min(datetime(y2, m2, 1, 6, tzinfo=UTC), end)
        batches.append((sent, ids))
    return batches
