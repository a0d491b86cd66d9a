"""Retention of scoring runs: old runs go with their metrics (PostgreSQL: their partition), segment runs and
members; runs that an enrolment, a membership baseline or the latest-run readers need stay."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from loyalty.models import CustomerMetrics, ScoringRun, SegmentMember, SegmentRun
from loyalty.retention.services.run_retention import scoring_runs_prune
from loyalty.retention.tasks import prune_scoring_runs
from loyalty.segmentation.models import RunStatus
from loyalty.segmentation.services.scoring import scoring_model_create, scoring_run_create, scoring_run_execute
from tests.factories import CustomerFactory, MembershipFactory
from tests.loyalty.programmes.factories import SegmentMemberFactory, SegmentRunFactory
from tests.loyalty.scoring.factories import AS_OF

pytestmark = pytest.mark.django_db


def _run(model, day: int) -> ScoringRun:
    run = scoring_run_create(scoring_model=model, as_of=AS_OF + timedelta(days=day), enqueue=False)
    run = scoring_run_execute(run_id=run.pk)
    assert run.status == RunStatus.SUCCEEDED, run.error
    return run


def _age(*runs: ScoringRun, days: int) -> None:
    ScoringRun.objects.filter(pk__in=[r.pk for r in runs]).update(created_at=timezone.now() - timedelta(days=days))


def _partition_exists(run: ScoringRun) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [f"loyalty_customermetrics_r{run.pk}"])
        return cursor.fetchone()[0]


def test_old_runs_go_with_what_they_stored_unless_something_uses_them():
    customers = CustomerFactory.create_batch(3)
    other_model = scoring_model_create(name="other")
    only = _run(other_model, -10)  # old, but the newest (and only) run of its model
    model = scoring_model_create(name="m")
    plain, enrolled, baseline, recent = (_run(model, day) for day in range(4))
    failed = ScoringRun.objects.create(scoring_model=model, as_of=AS_OF, status=RunStatus.FAILED)
    pending = ScoringRun.objects.create(scoring_model=model, as_of=AS_OF, status=RunStatus.PENDING)
    _age(only, plain, enrolled, baseline, failed, pending, days=36)
    plain_segment_run = SegmentRunFactory(scoring_run=plain)
    SegmentMemberFactory(run=plain_segment_run, customer=customers[0])
    MembershipFactory(customer=customers[0], source_run=SegmentRunFactory(scoring_run=enrolled))
    # Without a source run the impact report bands by the newest run as of the enrolment: `baseline`.
    MembershipFactory(customer=customers[1], source_run=None, enrolled_at=baseline.as_of + timedelta(hours=12))

    result = scoring_runs_prune(retention_days=35)

    assert result == {"deleted": [plain.pk, failed.pk], "kept": sorted([only.pk, enrolled.pk, baseline.pk])}
    assert set(ScoringRun.objects.values_list("id", flat=True)) == {
        only.pk,
        enrolled.pk,
        baseline.pk,
        recent.pk,
        pending.pk,
    }
    assert CustomerMetrics.objects.filter(scoring_run_id=plain.pk).count() == 0
    assert CustomerMetrics.objects.filter(scoring_run_id__in=[enrolled.pk, baseline.pk, recent.pk]).count() == 9
    assert not SegmentRun.objects.filter(pk=plain_segment_run.pk).exists()
    assert SegmentMember.objects.filter(run_id=plain_segment_run.pk).count() == 0
    assert SegmentRun.objects.filter(scoring_run=enrolled).count() == 1
    if connection.vendor == "postgresql":
        assert (_partition_exists(plain), _partition_exists(enrolled), _partition_exists(recent)) == (
            False,
            True,
            True,
        )


def test_runs_within_the_retention_or_with_retention_off_stay():
    CustomerFactory()
    model = scoring_model_create(name="m")
    first, second = _run(model, 0), _run(model, 1)
    _age(first, days=20)

    assert scoring_runs_prune(retention_days=35) == {"deleted": [], "kept": []}
    _age(first, days=400)
    assert scoring_runs_prune(retention_days=0) == {"deleted": [], "kept": []}
    assert set(ScoringRun.objects.values_list("id", flat=True)) == {first.pk, second.pk}


def test_the_daily_beat_task_prunes_with_the_configured_retention():
    CustomerFactory()
    model = scoring_model_create(name="m")
    old, newest = _run(model, 0), _run(model, 1)
    _age(old, days=settings.SCORING_RUN_RETENTION_DAYS + 1)

    assert prune_scoring_runs() == {"deleted": [old.pk], "kept": []}
    assert list(ScoringRun.objects.values_list("id", flat=True)) == [newest.pk]
    assert settings.CELERY_BEAT_SCHEDULE["loyalty-prune-scoring-runs"] == {
        "task": "loyalty.tasks.prune_scoring_runs",
        "schedule": 24 * 3600,
    }
