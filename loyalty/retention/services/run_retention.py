"""Retention of scoring runs: what a run stored goes when nothing needs it any more.

A scoring run (its CustomerMetrics, on PostgreSQL a partition of its own, and its segment runs with their
members) is deleted once it was created more than SCORING_RUN_RETENTION_DAYS ago, unless
- it is its scoring model's newest succeeded run (segments, tier policy and the member page read the latest);
- a segment run on it is the source of an enrolment or of a membership (baseline engagement bands of the impact
  report, "why is this customer in?" for members);
- it is the run the impact report falls back to for a membership without a source run (the newest succeeded
  run as of the enrolment);
- it is pending or running.
Lives in retention, the top domain that reads runs, because those references live in programmes and retention.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import OuterRef, Q, Subquery
from django.utils import timezone

from loyalty.programmes.models import Enrolment, Membership
from loyalty.programmes.services.tier_policy import latest_scoring_runs
from loyalty.segmentation.models import RunStatus, ScoringModel, ScoringRun, SegmentRun
from loyalty.segmentation.services.segments import scoring_runs_delete


def scoring_runs_kept() -> set[int]:
    """Scoring runs that retention never deletes, whatever their age (see the module docstring)."""
    newest_of_model = latest_scoring_runs().filter(scoring_model_id=OuterRef("pk")).values("id")[:1]
    newest = set(
        ScoringModel.objects.annotate(newest=Subquery(newest_of_model))
        .filter(newest__isnull=False)
        .values_list("newest", flat=True)
    )
    used_segment_runs = SegmentRun.objects.filter(
        Q(pk__in=Enrolment.objects.values("segment_run_id"))
        | Q(pk__in=Membership.objects.filter(source_run__isnull=False).values("source_run_id"))
    )
    kept = newest | set(used_segment_runs.values_list("scoring_run_id", flat=True))
    run_t, membership_t = ScoringRun._meta.db_table, Membership._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT DISTINCT (SELECT r.id FROM {run_t} r WHERE r.status = %s AND r.as_of <= e.enrolled_at "
            f"ORDER BY r.as_of DESC, r.id DESC LIMIT 1) FROM (SELECT DISTINCT enrolled_at FROM {membership_t} "
            "WHERE source_run_id IS NULL) e",
            [RunStatus.SUCCEEDED],
        )
        kept |= {row[0] for row in cursor.fetchall() if row[0] is not None}
    return kept


def scoring_runs_prune(*, now: datetime | None = None, retention_days: int | None = None) -> dict:
    """Delete the scoring runs beyond the retention that nothing keeps; answers what went and what stayed."""
    days = settings.SCORING_RUN_RETENTION_DAYS if retention_days is None else retention_days
    if days <= 0:
        return {"deleted": [], "kept": []}
    cutoff = (now or timezone.now()) - timedelta(days=days)
    old = set(
        ScoringRun.objects.filter(
            created_at__lt=cutoff, status__in=[RunStatus.SUCCEEDED, RunStatus.FAILED]
        ).values_list("id", flat=True)
    )
    kept = old & scoring_runs_kept()
    deleted = sorted(old - kept)
    scoring_runs_delete(run_ids=deleted)
    return {"deleted": deleted, "kept": sorted(kept)}
