"""Benchmark: enrolment of a 100,000-member segment run and re-evaluation of 100,000 memberships.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/premier_h5 python bench/programmes.py [--customers 100000]

Generates its own customers, scoring runs, metrics and a segment run with set-based SQL (in a programme and
segment named after the run, so it can be repeated), then times:
  1. enrolment (the Celery task's work: memberships, history, invitations outbox, result statistics);
  2. re-evaluation of every membership against a second scoring run where about a third of the members move.
Email dispatch is not part of either figure (it is a separate task working through the outbox).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402

from loyalty.models import (  # noqa: E402
    Customer,
    CustomerMetrics,
    Enrolment,
    Membership,
    Programme,
    ScoringModel,
    ScoringRun,
    Segment,
    SegmentMember,
    SegmentRun,
    Tier,
    TierChange,
)
from loyalty.programmes.services import enrolment as enrolment_service  # noqa: E402
from loyalty.programmes.services import tier_policy  # noqa: E402


def generate(count: int, tag: str) -> tuple[SegmentRun, ScoringRun]:
    model = ScoringModel.objects.create(name=f"bench {tag}")
    as_of = datetime.now(UTC)
    first = ScoringRun.objects.create(scoring_model=model, as_of=as_of - timedelta(days=30), status="succeeded")
    second = ScoringRun.objects.create(scoring_model=model, as_of=as_of - timedelta(minutes=1), status="succeeded")
    segment = Segment.objects.create(name=f"bench {tag}")
    run = SegmentRun.objects.create(segment=segment, scoring_run=first, status="succeeded")
    c_t, cm_t, sm_t = (m._meta.db_table for m in (Customer, CustomerMetrics, SegmentMember))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {c_t} (external_id, name, email, phone, birth_year, region, attributes, joined_at, status, "
            f"created_at, updated_at) SELECT %s || n, 'Bench ' || n, 'bench' || n || '@example.test', '', 1980, "
            f"'north', '{{}}', now(), 'active', now(), now() FROM generate_series(1, %s) n",
            [f"B{tag}-", count],
        )
        mine = f"FROM {c_t} c WHERE c.external_id LIKE %s"
        for scoring, shift in ((first, 0), (second, 1)):
            # The second run moves the percentile of about a third of the customers.
            cursor.execute(
                f"INSERT INTO {cm_t} (scoring_run_id, customer_id, revenue_minor, revenue_rank, revenue_percentile, "
                f"engagement_score, engagement_percentile, channels_used, active_weeks, days_since_last, "
                f"decayed_activity) SELECT %s, c.id, 50000 + (c.id * 7919) %% 900000, 1, "
                f"CASE WHEN %s = 1 AND c.id %% 3 = 0 THEN ((c.id * 71) %% 10000) / 100.0 "
                f"ELSE ((c.id * 37) %% 10000) / 100.0 END, ((c.id * 53) %% 10000) / 100.0, 50.0, 3, 10, 3, 0.0 "
                f"{mine}",
                [scoring.pk, shift, f"B{tag}-%"],
            )
        cursor.execute(
            f"INSERT INTO {sm_t} (run_id, customer_id, rank, \"values\") SELECT %s, c.id, c.id, '{{}}' {mine}",
            [run.pk, f"B{tag}-%"],
        )
        # As in production, where customer and metric rows are not brand new: vacuumed, hint bits set.
        for name in (c_t, cm_t, sm_t):
            cursor.execute(f"VACUUM ANALYZE {name}")
    return run, second


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=100_000)
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("Run on PostgreSQL: set DATABASE_URL.")
    tag = datetime.now(UTC).strftime("%Y%m%d%H%M%S")

    started = time.perf_counter()
    run, second = generate(args.customers, tag)
    print(
        f"generated {args.customers} customers, 2 scoring runs, 1 segment run in {time.perf_counter() - started:.1f} s"
    )

    programme = Programme.objects.create(name=f"bench {tag}", seed=tag, holdout_percent=10, grace_period_days=30)
    for rank, (name, threshold) in enumerate((("Silver", 0), ("Gold", 50), ("Platinum", 90)), start=1):
        Tier.objects.create(programme=programme, rank=rank, name=name, threshold=threshold)
    enrolment = Enrolment.objects.create(programme=programme, segment_run=run)

    # Emails are a separate task: keep the after-commit dispatch out of the timing.
    from loyalty import tasks

    tasks.send_member_notifications.delay_on_commit = lambda *a, **k: None
    tasks.send_enrolment_invitations.delay_on_commit = lambda *a, **k: None

    started = time.perf_counter()
    enrolment_service.enrolment_run(enrolment_id=enrolment.pk)
    enrol_seconds = time.perf_counter() - started
    enrolment.refresh_from_db()
    result = enrolment.result
    print(f"enrolment: {enrol_seconds:.2f} s for {enrolment.enrolled_count} memberships; steps {enrolment.timings}")
    print(
        f"  groups {result['totals']}, SRM p={result['sample_ratio']['p_value']}, "
        f"MDE {result['power']['min_detectable_retention_effect_points']} points"
    )

    started = time.perf_counter()
    summary = tier_policy.programme_evaluate(programme=programme, scoring_run=second)
    eval_seconds = time.perf_counter() - started
    print(f"re-evaluation: {eval_seconds:.2f} s; {summary}")

    started = time.perf_counter()
    again = tier_policy.programme_evaluate(programme=programme, scoring_run=second)
    print(
        f"same-day re-evaluation: {time.perf_counter() - started:.2f} s; changes: "
        f"{again['upgrades'] + again['downgrades'] + again['downgrade_warnings']}"
    )
    print(
        f"tier changes written: {TierChange.objects.filter(membership__programme=programme).count()}, "
        f"memberships: {Membership.objects.filter(programme=programme).count()}"
    )


if __name__ == "__main__":
    main()
