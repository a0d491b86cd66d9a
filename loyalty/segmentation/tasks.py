"""Celery tasks of scoring and segments.

They take ids, call services and are safe to run twice. Their names stay `loyalty.tasks.*`: beat entries and
queued messages refer to them by name."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="loyalty.tasks.scoring_run_task")
def scoring_run_task(run_id: int) -> str:
    from loyalty.segmentation.services.scoring import scoring_run_execute

    return scoring_run_execute(run_id=run_id).status


@shared_task(name="loyalty.tasks.segment_run_task")
def segment_run_task(run_id: int) -> str:
    from loyalty.segmentation.services.segments import segment_run_execute

    return segment_run_execute(run_id=run_id).status


@shared_task(name="loyalty.tasks.scheduled_scoring_and_segments")
def scheduled_scoring_and_segments() -> dict:
    """Periodic: score with the newest default model as of today, then run every segment on that run."""
    from loyalty.segmentation.services.segments import scheduled_runs_execute

    return scheduled_runs_execute()


@shared_task(name="loyalty.tasks.rollups_apply_batch")
def rollups_apply_batch(batch_id: int) -> bool:
    """After an ingest commit: add the batch's rows to the rollups (a no-op if that was done already)."""
    from loyalty.segmentation.services.rollups import rollup_batch_apply, rollup_batches_purge

    applied = rollup_batch_apply(batch_id=batch_id)
    rollup_batches_purge()
    return applied
