"""Celery tasks of retention: stored impact reports.

They take ids, call services and are safe to run twice. Their names stay `loyalty.tasks.*`: beat entries and
queued messages refer to them by name."""

from __future__ import annotations

from contextlib import suppress

from celery import shared_task


@shared_task(name="loyalty.tasks.impact_report_run")
def impact_report_run(report_id: int) -> None:
    """Compute a stored impact report (large programmes). Safe to run twice."""
    from core.errors import Conflict
    from loyalty.retention.services.impact import impact_report_run_stored

    with suppress(Conflict):  # another delivery is computing it
        impact_report_run_stored(report_id=report_id)


@shared_task(name="loyalty.tasks.reconcile_runs")
def reconcile_runs() -> dict:
    """Beat (every RUN_RECONCILE_INTERVAL seconds): requeue or fail the scoring runs, segment runs, enrolments
    and stored impact reports that never started or whose worker died (core.runs). Lives here, in the top
    domain that runs work, because it settles the runs of every domain below it."""
    from loyalty.programmes.services.enrolment import enrolments_reconcile
    from loyalty.retention.services.impact import impact_reports_reconcile
    from loyalty.segmentation.services.scoring import scoring_runs_reconcile
    from loyalty.segmentation.services.segments import segment_runs_reconcile

    return {
        "scoring_runs": scoring_runs_reconcile(),
        "segment_runs": segment_runs_reconcile(),
        "enrolments": enrolments_reconcile(),
        "impact_reports": impact_reports_reconcile(),
    }


@shared_task(name="loyalty.tasks.prune_scoring_runs")
def prune_scoring_runs() -> dict:
    """Beat (daily): delete scoring runs beyond SCORING_RUN_RETENTION_DAYS that nothing uses any more. Lives
    here because what keeps a run (enrolments, membership baselines of the impact report) is above scoring."""
    from loyalty.retention.services.run_retention import scoring_runs_prune

    return scoring_runs_prune()
