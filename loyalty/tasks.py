"""Celery tasks of the loyalty app: take ids, call services, safe to run twice."""

from __future__ import annotations

from contextlib import suppress

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


@shared_task(name="loyalty.tasks.run_enrolment")
def run_enrolment(enrolment_id: int) -> int | None:
    """Enrol a segment run into a programme (set-based). Safe to run twice."""
    from loyalty.services.enrolment import enrolment_run

    enrolment = enrolment_run(enrolment_id=enrolment_id)
    return enrolment.enrolled_count if enrolment else None


@shared_task(name="loyalty.tasks.evaluate_programme")
def evaluate_programme(programme_id: int) -> dict:
    from loyalty.models import Programme
    from loyalty.services.tier_policy import programme_evaluate

    return programme_evaluate(programme=Programme.objects.get(pk=programme_id))


@shared_task(name="loyalty.tasks.evaluate_due_programmes")
def evaluate_due_programmes() -> int:
    """Beat: re-evaluate the tiers of every programme whose evaluation is due."""
    from loyalty.services.tier_policy import programmes_evaluate_due

    return len(programmes_evaluate_due())


@shared_task(name="loyalty.tasks.send_member_notifications")
def send_member_notifications() -> int:
    from loyalty.services.notifications import notifications_send

    return notifications_send()


@shared_task(name="loyalty.tasks.send_enrolment_invitations")
def send_enrolment_invitations(enrolment_id: int) -> int:
    from loyalty.services.notifications import invitations_send

    return invitations_send(enrolment_id=enrolment_id)


@shared_task
def impact_report_run(report_id: int) -> None:
    """Compute a stored impact report (large programmes). Safe to run twice."""
    from core.errors import Conflict
    from loyalty.services.impact import impact_report_run_stored

    with suppress(Conflict):  # another delivery is computing it
        impact_report_run_stored(report_id=report_id)
