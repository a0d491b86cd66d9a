"""Concierge background work: the periodic SLA check and the emails (sent after commit, once each)."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction

from concierge.models import ConciergeRequest, NotificationSent, RequestEvent, RequestStatus
from concierge.services.sla import sla_breaches_mark
from loyalty.customers.contact import contact_email


@shared_task
def sla_breaches_check() -> dict[str, int]:
    """Periodic (concierge.schedule): mark SLA breaches and escalate. Safe to run twice."""
    return sla_breaches_mark()


def _send_once(key: str, *, subject: str, body: str, to: list[str]) -> bool:
    """Send one email unless `key` was already sent. The marker row and the send share a transaction: if the
    send fails the marker is rolled back and a retry sends again."""
    to = [address for address in to if address]
    if not to:
        return False
    try:
        with transaction.atomic():
            NotificationSent.objects.create(key=key)
            send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, to)
    except IntegrityError:
        return False
    return True


def _member_email(request: ConciergeRequest) -> str:
    """The member's one contact address (loyalty's documented rule)."""
    return contact_email(request.membership.customer_id)


@shared_task
def notify_member(event_id: int) -> bool:
    """Email the member about an audit event: acknowledged, an agent's reply, fulfilled."""
    event = RequestEvent.objects.select_related("request__membership").filter(pk=event_id).first()
    if event is None:
        return False
    request = event.request
    ref = f"#{request.pk} {request.subject}"
    if event.action == RequestEvent.Action.AGENT_REPLIED:
        subject, body = f"New reply on your request {ref}", "Your concierge has replied. Open the app to read it."
    elif event.action == RequestEvent.Action.STATUS_CHANGED and event.new_value == RequestStatus.ACKNOWLEDGED:
        subject, body = f"We are on it: {ref}", "Your concierge has acknowledged your request."
    elif event.action == RequestEvent.Action.STATUS_CHANGED and event.new_value == RequestStatus.FULFILLED:
        subject, body = f"Done: {ref}", "Your request is fulfilled. Tell us how we did by rating it in the app."
    else:
        return False
    return _send_once(f"event:{event.pk}", subject=subject, body=body, to=[_member_email(request)])


@shared_task
def notify_escalation(request_id: int, kind: str) -> bool:
    """Tell the assignee (or the concierge lead if nobody has it) that a request missed an SLA."""
    request = ConciergeRequest.objects.select_related("assignee").filter(pk=request_id).first()
    if request is None:
        return False
    lead = settings.CONCIERGE_LEAD_EMAIL
    to = request.assignee.email if request.assignee_id else lead
    return _send_once(
        f"escalation:{request.pk}:{kind}",
        subject=f"SLA missed ({kind.replace('_', ' ')}): request #{request.pk}",
        body=f"Request #{request.pk} '{request.subject}' missed its {kind.replace('_', ' ')} SLA "
        f"and was escalated to priority {request.priority}.",
        to=[to],
    )
