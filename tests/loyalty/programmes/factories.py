"""Factories for the programmes tests (scoring and segment rows are created directly here)."""

from __future__ import annotations

from datetime import UTC, datetime

import factory
from django.db import connection

from loyalty.models import (
    Customer,
    CustomerMetrics,
    ScoringModel,
    ScoringRun,
    Segment,
    SegmentMember,
    SegmentRun,
)
from loyalty.segmentation.models import RunStatus
from tests.factories import CustomerFactory

AS_OF = datetime(2026, 3, 1, tzinfo=UTC)


class ScoringModelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ScoringModel

    name = factory.Sequence(lambda n: f"Model {n}")


class ScoringRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ScoringRun

    scoring_model = factory.SubFactory(ScoringModelFactory)
    as_of = AS_OF
    status = RunStatus.SUCCEEDED
    progress = 100


class CustomerMetricsFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CustomerMetrics

    scoring_run = factory.SubFactory(ScoringRunFactory)
    customer = factory.SubFactory(CustomerFactory)
    revenue_minor = 120_000
    revenue_rank = 1
    revenue_percentile = 50.0
    engagement_score = 60.0
    engagement_percentile = 50.0
    channels_used = 3
    active_weeks = 10
    days_since_last = 3


class SegmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Segment

    name = factory.Sequence(lambda n: f"Segment {n}")


class SegmentRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SegmentRun

    segment = factory.SubFactory(SegmentFactory)
    scoring_run = factory.SubFactory(ScoringRunFactory)
    status = RunStatus.SUCCEEDED
    progress = 100


class SegmentMemberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SegmentMember

    run = factory.SubFactory(SegmentRunFactory)
    customer = factory.SubFactory(CustomerFactory)
    rank = factory.Sequence(lambda n: n + 1)


def segment_run_with(customers_metrics: list[tuple[Customer, float]], *, scoring_run=None, metric="revenue_percentile"):
    """A succeeded segment run of these customers, with metrics (the given value on `metric`)."""
    scoring_run = scoring_run or ScoringRunFactory()
    run = SegmentRunFactory(scoring_run=scoring_run)
    for rank, (customer, value) in enumerate(customers_metrics, start=1):
        CustomerMetricsFactory(scoring_run=scoring_run, customer=customer, **{metric: value})
        SegmentMemberFactory(run=run, customer=customer, rank=rank)
    return run


def synthetic_population(*, count: int, prefix: str, scoring_run: ScoringRun, segment_run: SegmentRun) -> None:
    """`count` customers with metrics and segment membership, written set-based (a recursive CTE works on
    SQLite and PostgreSQL alike). Metric values are spread deterministically from the customer id."""
    ops = connection.ops
    now = ops.adapt_datetimefield_value(AS_OF)
    c_t = ops.quote_name(Customer._meta.db_table)
    cm_t = ops.quote_name(CustomerMetrics._meta.db_table)
    sm_t = ops.quote_name(SegmentMember._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < %s) "
            f"INSERT INTO {c_t} (external_id, name, email, phone, birth_year, region, attributes, joined_at, "
            f"status, created_at, updated_at) "
            f"SELECT %s || n, 'Synthetic ' || n, '', '', 1980, 'north', '{{}}', %s, 'active', %s, %s FROM seq",
            [count, f"{prefix}-", now, now, now],
        )
        mine = f"FROM {c_t} c WHERE c.external_id LIKE %s"
        cursor.execute(
            f"INSERT INTO {cm_t} (scoring_run_id, customer_id, revenue_minor, revenue_rank, revenue_percentile, "
            f"engagement_score, engagement_percentile, channels_used, active_weeks, days_since_last, "
            f"decayed_activity) SELECT %s, c.id, 50000 + (c.id * 7919) %% 900000, 1, "
            f"((c.id * 37) %% 10000) / 100.0, ((c.id * 53) %% 10000) / 100.0, 50.0, 3, 10, 3, 0.0 {mine}",
            [scoring_run.pk, f"{prefix}-%"],
        )
        cursor.execute(
            f"INSERT INTO {sm_t} (run_id, customer_id, rank, {ops.quote_name('values')}) "
            f"SELECT %s, c.id, c.id, '{{}}' {mine}",
            [segment_run.pk, f"{prefix}-%"],
        )
