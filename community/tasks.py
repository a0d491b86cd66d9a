"""Community background work: referral attribution of ingested customers, influence refresh, author emails."""

from __future__ import annotations

from datetime import datetime

from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction

from community.models import IdeaStatusChange, NotificationSent
from community.services.influence import influence_refresh as influence_refresh_service
from community.services.referrals import referral_attribute_ingested as attribute_ingested


@shared_task
def referral_attribute_ingested(customer_id: int, at: str) -> str:
    """Attribute the referral code an ingested customer carried (safe to run twice)."""
    return attribute_ingested(customer_id=customer_id, at=datetime.fromisoformat(at))


@shared_task
def influence_refresh() -> dict:
    """Periodic (community.schedule) and on a manager's request."""
    return influence_refresh_service()


@shared_task
def notify_idea_author(change_id: int) -> bool:
    """Email an idea's author about its new status, once per status change."""
    change = IdeaStatusChange.objects.select_related("idea__author__user").filter(pk=change_id).first()
    if change is None:
        return False
    author = change.idea.author
    to = author.user.email if author.user_id and author.user.email else author.email
    if not to:
        return False
    status = change.get_to_status_display().lower()
    try:
        with transaction.atomic():
            NotificationSent.objects.create(key=f"idea-status:{change.pk}")
            send_mail(
                f"Your idea '{change.idea.title}' is {status}",
                f"Your idea '{change.idea.title}' moved from {change.from_status} to {change.to_status}."
                + (f"\n\n{change.note}" if change.note else ""),
                settings.DEFAULT_FROM_EMAIL,
                [to],
            )
    except IntegrityError:
        return False
    return True
