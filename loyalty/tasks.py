"""Celery tasks of the loyalty app: take ids, call services, safe to run twice."""

from __future__ import annotations

from celery import shared_task


@shared_task
def scoring_run_task(run_id: int) -> str:
    from loyalty.services.scoring import scoring_run_execute

    return scoring_run_execute(run_id=run_id).status


@shared_task
def segment_run_task(run_id: int) -> str:
    from loyalty.services.segments import segment_run_execute

    return segment_run_execute(run_id=run_id).status


@shared_task
def scheduled_scoring_and_segments() -> dict:
    """Periodic: score with the newest default model as of today, then run every segment on that run."""
    from loyalty.services.segments import scheduled_runs_execute

    return scheduled_runs_execute()
