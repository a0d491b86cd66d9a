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
