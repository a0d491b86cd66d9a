from contextlib import suppress

from celery import shared_task


@shared_task
def impact_report_run(report_id: int) -> None:
    """Compute a stored impact report (large programmes). Safe to run twice."""
    from core.errors import Conflict
    from loyalty.services.impact import impact_report_run_stored

    with suppress(Conflict):  # another delivery is computing it
        impact_report_run_stored(report_id=report_id)
