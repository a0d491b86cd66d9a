from datetime import timedelta

import pytest
from django.conf import settings
from django.core import mail

from concierge.models import ConciergeRequest, RequestEvent
from concierge.selectors import timeline_entries
from concierge.services.assignment import request_assign
from concierge.services.messages import message_agent_reply, note_add
from concierge.services.requests import request_transition
from concierge.services.sla import sla_breaches_mark
from concierge.tasks import notify_member
from tests.concierge.factories import NOW, make_member, make_request
from tests.conftest import api_as
from tests.factories import TierFactory

pytestmark = pytest.mark.django_db


def test_breach_detection_marks_escalates_and_is_idempotent(agent, django_capture_on_commit_callbacks):
    user, _ = make_member(first_response_sla_hours=1, resolution_sla_hours=4, rank=2)
    late = make_request(user, subject="late")
    answered = make_request(user, subject="answered")
    fresh = make_request(user, subject="fresh", now=NOW + timedelta(minutes=50))
    message_agent_reply(request_id=answered.pk, agent=agent, body="hi", now=NOW + timedelta(minutes=30))
    request_assign(request_id=late.pk, actor=agent, now=NOW)

    with django_capture_on_commit_callbacks(execute=True):
        first = sla_breaches_mark(now=NOW + timedelta(hours=1, seconds=1))
    with django_capture_on_commit_callbacks(execute=True):
        second = sla_breaches_mark(now=NOW + timedelta(hours=1, minutes=5))

    assert first == {"first_response": 1, "resolution": 0}
    assert second == {"first_response": 0, "resolution": 0}
    late.refresh_from_db()
    answered.refresh_from_db()
    fresh.refresh_from_db()
    assert (late.first_response_breached, late.priority, late.escalated_at) == (
        True,
        3,
        NOW + timedelta(hours=1, seconds=1),
    )
    assert (answered.first_response_breached, answered.priority) == (False, 2)
    assert (fresh.first_response_breached, fresh.priority) == (False, 2)
    assert list(
        RequestEvent.objects.filter(request=late, action__in=["breached", "priority_changed"])
        .order_by("id")
        .values_list("actor", "action", "field", "old_value", "new_value")
    ) == [
        (None, "breached", "first_response_breached", "False", "True"),
        (None, "priority_changed", "priority", "2", "3"),
    ]
    # The assignee is told once.
    assert [(m.to, m.subject) for m in mail.outbox] == [
        ([agent.email], f"SLA missed (first response): request #{late.pk}")
    ]

    # Resolution SLA passes for every open request: each escalated once more, unassigned ones to the lead.
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        third = sla_breaches_mark(now=NOW + timedelta(hours=5))
        fourth = sla_breaches_mark(now=NOW + timedelta(hours=6))
    assert third == {"first_response": 1, "resolution": 3}
    assert fourth == {"first_response": 0, "resolution": 0}
    late.refresh_from_db()
    fresh.refresh_from_db()
    assert (late.resolution_breached, late.priority) == (True, 4)
    assert (fresh.first_response_breached, fresh.resolution_breached, fresh.priority) == (True, True, 4)
    lead = settings.CONCIERGE_LEAD_EMAIL
    assert sorted(m.to[0] for m in mail.outbox) == sorted([agent.email, lead, lead, lead])


def test_closed_requests_are_never_marked(agent):
    user, _ = make_member(first_response_sla_hours=1, resolution_sla_hours=4)
    request = make_request(user)
    request_transition(request_id=request.pk, actor=agent, to_status="declined", now=NOW + timedelta(minutes=10))
    assert sla_breaches_mark(now=NOW + timedelta(days=3)) == {"first_response": 0, "resolution": 0}


def test_breach_check_task_is_scheduled_and_runs():
    from concierge.tasks import sla_breaches_check

    assert settings.CELERY_BEAT_SCHEDULE["concierge-sla-breaches"]["task"] == "concierge.tasks.sla_breaches_check"
    user, _ = make_member(first_response_sla_hours=1, resolution_sla_hours=4)
    make_request(user, now=NOW - timedelta(days=400))
    result = sla_breaches_check.delay().get()
    assert result == {"first_response": 1, "resolution": 1}


def test_sla_status_through_the_api(agent_api):
    user, _ = make_member(first_response_sla_hours=1, resolution_sla_hours=4)
    request = make_request(user, now=NOW - timedelta(days=400))
    sla_breaches_mark(now=NOW)
    body = agent_api.get(f"concierge/agent/requests/{request.pk}/sla").json()
    assert body["first_response"]["breached"] is True and body["first_response"]["met"] is None
    assert body["first_response"]["seconds_left"] < 0
    assert body["resolution"]["breached"] is True


def test_member_emails_acknowledged_reply_fulfilled_after_commit(agent, django_capture_on_commit_callbacks):
    user, _ = make_member()
    request = make_request(user)
    with django_capture_on_commit_callbacks(execute=True):
        request_transition(request_id=request.pk, actor=agent, to_status="acknowledged", now=NOW)
        note_add(request_id=request.pk, agent=agent, body="internal", now=NOW)
        message_agent_reply(request_id=request.pk, agent=agent, body="Found a table", now=NOW)
        request_transition(request_id=request.pk, actor=agent, to_status="in_progress", now=NOW)
        request_transition(request_id=request.pk, actor=agent, to_status="fulfilled", now=NOW)
    assert [(m.to, m.subject) for m in mail.outbox] == [
        ([user.email], f"We are on it: #{request.pk} A table for two"),
        ([user.email], f"New reply on your request #{request.pk} A table for two"),
        ([user.email], f"Done: #{request.pk} A table for two"),
    ]
    assert all("internal" not in m.body for m in mail.outbox)
    # A task that runs twice sends once.
    event = RequestEvent.objects.get(request=request, action="agent_replied")
    assert notify_member(event.pk) is False
    assert len(mail.outbox) == 3


def test_no_email_before_commit(agent, django_capture_on_commit_callbacks):
    user, _ = make_member()
    request = make_request(user)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        request_transition(request_id=request.pk, actor=agent, to_status="acknowledged", now=NOW)
    assert len(mail.outbox) == 0 and len(callbacks) == 1


def test_sla_report_per_tier_and_category(agent, manager_api):
    gold = TierFactory(rank=3, name="Gold", first_response_sla_hours=1, resolution_sla_hours=10)
    silver = TierFactory(
        programme=gold.programme, rank=2, name="Silver", first_response_sla_hours=2, resolution_sla_hours=20
    )
    g_user, _ = make_member(tier=gold, monthly_request_allowance=10)
    s_user, _ = make_member(tier=silver)
    g1 = make_request(g_user, category="dining")
    g2 = make_request(g_user, category="dining")
    g3 = make_request(g_user, category="dining")
    s1 = make_request(s_user, category="travel")
    # gold dining: first responses after 30 min (met), 2 h (missed), none; one resolved in 5 h, one in 12 h.
    message_agent_reply(request_id=g1.pk, agent=agent, body="a", now=NOW + timedelta(minutes=30))
    message_agent_reply(request_id=g2.pk, agent=agent, body="b", now=NOW + timedelta(hours=2))
    for req, hours in ((g1, 5), (g2, 12)):
        for step in ("in_progress", "fulfilled"):  # the agent's reply acknowledged it
            request_transition(request_id=req.pk, actor=agent, to_status=step, now=NOW + timedelta(hours=hours))
    message_agent_reply(request_id=s1.pk, agent=agent, body="c", now=NOW + timedelta(hours=1))
    sla_breaches_mark(now=NOW + timedelta(hours=3))

    response = manager_api.get("concierge/reports/sla")
    assert response.status_code == 200
    assert response.json() == [
        {
            "tier": "Silver",
            "tier_rank": 2,
            "category": "travel",
            "requests": 1,
            "responded": 1,
            "first_response_met": 1,
            "first_response_met_share": 1.0,
            "resolved": 0,
            "resolution_met": 0,
            "resolution_met_share": None,
            "first_response_breached": 0,
            "resolution_breached": 0,
            "median_first_response_seconds": 3600.0,
            "median_resolution_seconds": None,
        },
        {
            "tier": "Gold",
            "tier_rank": 3,
            "category": "dining",
            "requests": 3,
            "responded": 2,
            "first_response_met": 1,
            "first_response_met_share": 0.3333,
            "resolved": 2,
            "resolution_met": 1,
            "resolution_met_share": 0.5,
            "first_response_breached": 2,
            "resolution_breached": 1,
            "median_first_response_seconds": 4500.0,
            "median_resolution_seconds": 30600.0,
        },
    ]
    assert g3.pk  # the unanswered gold request counts as a request, not as a response
    window = manager_api.get("concierge/reports/sla?since=2026-03-11T00:00:00Z").json()
    assert window == []


def test_report_is_for_managers_only(agent_api):
    response = agent_api.get("concierge/reports/sla")
    assert (response.status_code, response.json()["code"]) == (403, "role_required")


def test_timeline_entries():
    user, membership = make_member()
    first = make_request(user, subject="Opera", category="tickets", now=NOW)
    second = make_request(user, subject="Flowers", category="gifts", now=NOW + timedelta(hours=1))
    other_user, _ = make_member()
    make_request(other_user)
    assert timeline_entries(customer_id=membership.customer_id) == [
        {
            "at": NOW + timedelta(hours=1),
            "kind": "concierge_request",
            "summary": "Gifts: Flowers (new)",
            "ref": second.pk,
        },
        {"at": NOW, "kind": "concierge_request", "summary": "Tickets: Opera (new)", "ref": first.pk},
    ]


def test_admin_is_read_only_for_requests_and_audit(admin_client):
    user, _ = make_member()
    request = make_request(user)
    event = RequestEvent.objects.get(request=request)
    assert admin_client.get("/admin/concierge/conciergerequest/").status_code == 200
    assert admin_client.get(f"/admin/concierge/conciergerequest/{request.pk}/change/").status_code == 200
    assert admin_client.get("/admin/concierge/requestevent/add/").status_code == 403
    response = admin_client.post(
        f"/admin/concierge/requestevent/{event.pk}/change/", {"action": "rated", "new_value": "forged"}
    )
    assert response.status_code == 403
    assert admin_client.post(f"/admin/concierge/requestevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    event.refresh_from_db()
    assert (event.action, event.new_value) == ("created", "new")
    assert ConciergeRequest.objects.count() == 1


def test_member_sees_due_times_in_the_api():
    user, _ = make_member(first_response_sla_hours=3, resolution_sla_hours=30)
    body = api_as(user).post("concierge/requests", {"category": "other", "subject": "Help"}).json()
    from datetime import datetime

    created = datetime.fromisoformat(body["created_at"])
    assert datetime.fromisoformat(body["first_response_due_at"]) - created == timedelta(hours=3)
    assert datetime.fromisoformat(body["resolution_due_at"]) - created == timedelta(hours=30)


@pytest.mark.postgres
def test_audit_rows_cannot_be_updated_or_deleted_in_the_database():
    from django.db import IntegrityError, transaction

    user, _ = make_member()
    request = make_request(user)
    event = RequestEvent.objects.get(request=request)
    with pytest.raises(IntegrityError), transaction.atomic():
        RequestEvent.objects.filter(pk=event.pk).update(new_value="forged")
    with pytest.raises(IntegrityError), transaction.atomic():
        RequestEvent.objects.filter(pk=event.pk).delete()
    event.refresh_from_db()
    assert event.new_value == "new"


@pytest.mark.parametrize(
    "query,status",
    [
        ("since=0145-05-25T03:38:46%2B23:56", 200),
        ("until=2026-03-10T12:00:00", 200),
        ("since=0001-01-01T00:00:00%2B05:00", 422),
    ],
)
def test_report_window_odd_offsets_are_handled(manager_api, query, status):
    response = manager_api.get(f"concierge/reports/sla?{query}")
    assert response.status_code == status
