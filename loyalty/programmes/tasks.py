"""Celery tasks of programmes: enrolment, tier evaluation, member emails.

They take ids, call services and are safe to run twice. Their names stay `loyalty.tasks.*`: beat entries and
queued messages refer to them by name."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="loyalty.tasks.run_enrolment")
def run_enrolment(enrolment_id: int) -> int | None:
    """Enrol a segment run into a programme (set-based). Safe to run twice."""
    from loyalty.programmes.services.enrolment import enrolment_run

    enrolment = enrolment_run(enrolment_id=enrolment_id)
    return enrolment.enrolled_count if enrolment else None


@shared_task(name="loyalty.tasks.evaluate_programme")
def evaluate_programme(programme_id: int) -> dict:
    from loyalty.programmes.models import Programme
    from loyalty.programmes.services.tier_policy import programme_evaluate

    return programme_evaluate(programme=Programme.objects.get(pk=programme_id))


@shared_task(name="loyalty.tasks.evaluate_due_programmes")
def evaluate_due_programmes() -> int:
    """Beat: re-evaluate the tiers of every programme whose evaluation is due."""
    from loyalty.programmes.services.tier_policy import programmes_evaluate_due

    return len(programmes_evaluate_due())


@shared_task(name="loyalty.tasks.send_member_notifications")
def send_member_notifications() -> int:
    from loyalty.programmes.services.notifications import notifications_send

    return notifications_send()


@shared_task(name="loyalty.tasks.send_enrolment_invitations")
def send_enrolment_invitations(enrolment_id: int) -> int:
    from loyalty.programmes.services.notifications import invitations_send

    return invitations_send(enrolment_id=enrolment_id)
