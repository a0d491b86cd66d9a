"""The agents' pages: queue and request page, every action, the conflict between two agents, and the gate."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from concierge.models import ConciergeRequest, RequestMessage
from tests.concierge.factories import make_member, make_request
from tests.console.conftest import client_for
from tests.factories import TierFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def gold():
    return TierFactory(
        rank=3, name="Gold", first_response_sla_hours=1, resolution_sla_hours=8, monthly_request_allowance=100
    )


@pytest.fixture
def member(gold):
    user, _ = make_member(tier=gold, name="Gus Gold")
    return user


def _req(member, *, hours_ago: float = 0, subject="A table for two"):
    return make_request(member, now=timezone.now() - timedelta(hours=hours_ago), subject=subject)


def test_queue_nearest_sla_first_breached_marked_counts(agent, member, django_assert_max_num_queries):
    late = _req(member, hours_ago=2, subject="Overdue table")
    late.first_response_breached = True
    late.save(update_fields=["first_response_breached"])
    fresh = _req(member, subject="Fresh tickets")
    for i in range(5):
        _req(member, subject=f"Extra {i}")
    client = client_for(agent)
    with django_assert_max_num_queries(6):
        response = client.get("/console/agent/queue/")
    assert response.status_code == 200
    page = list(response.context["page"])
    assert [r.pk for r in page][:2] == [late.pk, fresh.pk]
    content = response.content.decode()
    assert content.count("SLA breached</span>") == 1
    counts = {c["status"]: c["count"] for c in response.context["counts"]}
    assert counts == {
        "new": 7,
        "acknowledged": 0,
        "in_progress": 0,
        "awaiting_member": 0,
        "fulfilled": 0,
        "declined": 0,
        "cancelled": 0,
    }


def test_queue_query_count_does_not_grow_with_rows(agent, member, django_assert_max_num_queries):
    for i in range(30):
        _req(member, subject=f"Request {i}")
    client = client_for(agent)
    with django_assert_max_num_queries(6):
        response = client.get("/console/agent/queue/")
    assert len(response.context["page"]) == 25
    assert response.context["page"].paginator.num_pages == 2
    second = client_for(agent).get("/console/agent/queue/?page=2")
    assert len(second.context["page"]) == 5


def test_queue_filters_as_in_the_api(agent, colleague, member):
    mine = _req(member, subject="Mine")
    theirs = _req(member, subject="Theirs")
    _req(member, subject="Nobody's")
    client = client_for(agent)
    client.post(f"/console/agent/requests/{mine.pk}/assign-me/", {"version": _version(mine)})
    client_for(colleague).post(f"/console/agent/requests/{theirs.pk}/assign-me/", {"version": _version(theirs)})
    subjects = [r.subject for r in client.get("/console/agent/queue/?assignee=me").context["page"]]
    assert subjects == ["Mine"]
    subjects = [r.subject for r in client.get("/console/agent/queue/?assignee=none").context["page"]]
    assert subjects == ["Nobody's"]
    assert list(client.get("/console/agent/queue/?breached=yes").context["page"]) == []
    assert len(client.get("/console/agent/queue/?category=dining").context["page"]) == 3
    assert list(client.get("/console/agent/queue/?status=fulfilled").context["page"]) == []


def _version(req) -> str:
    return ConciergeRequest.objects.get(pk=req.pk).updated_at.isoformat()


def test_request_page_shows_conversation_notes_sla_audit_and_only_allowed_statuses(agent, member):
    req = _req(member)
    client = client_for(agent)
    client.post(
        f"/console/agent/requests/{req.pk}/note/", {"note-body": "Call the restaurant", "note-version": _version(req)}
    )
    response = client.get(f"/console/agent/requests/{req.pk}/")
    content = response.content.decode()
    assert response.status_code == 200
    assert "Internal note</span>" in content and "Call the restaurant" in content
    assert "First response</dt>" in content and "Resolution</dt>" in content
    assert "Internal note added" in content  # audit trail
    choices = [c[0] for c in response.context["transition_form"].fields["to_status"].choices]
    assert choices == ["acknowledged", "declined", "cancelled"]


def test_assign_to_me_then_reply_then_fulfil(agent, member):
    req = _req(member)
    client = client_for(agent)
    r = client.post(f"/console/agent/requests/{req.pk}/assign-me/", {"version": _version(req)})
    assert r.status_code == 302
    r = client.post(
        f"/console/agent/requests/{req.pk}/reply/", {"reply-body": "Booked for 8pm", "reply-version": _version(req)}
    )
    assert r.status_code == 302
    req.refresh_from_db()
    assert (req.assignee_id, req.status) == (agent.pk, "acknowledged")
    for status in ("in_progress", "fulfilled"):
        r = client.post(
            f"/console/agent/requests/{req.pk}/transition/",
            {"transition-to_status": status, "transition-note": "", "transition-version": _version(req)},
        )
        assert r.status_code == 302
    req.refresh_from_db()
    assert req.status == "fulfilled"
    assert list(RequestMessage.objects.filter(request=req).values_list("body", "internal")) == [
        ("Booked for 8pm", False)
    ]


def test_assign_to_a_colleague_chosen_by_name(agent, colleague, member):
    req = _req(member)
    client = client_for(agent)
    page = client.get(f"/console/agent/requests/{req.pk}/").content.decode()
    assert "Bob Colleague (0 open)" in page
    r = client.post(
        f"/console/agent/requests/{req.pk}/assign/",
        {"assign-assignee_id": colleague.pk, "assign-version": _version(req)},
    )
    assert r.status_code == 302
    req.refresh_from_db()
    assert req.assignee_id == colleague.pk
    audit = client.get(f"/console/agent/requests/{req.pk}/").content.decode()
    assert 'Assigned <span class="muted">Bob Colleague</span>' in audit


def test_two_agents_on_one_request_the_second_sees_the_conflict_and_nothing_changes(agent, colleague, member):
    req = _req(member)
    seen = _version(req)  # both opened the page now
    client_for(colleague).post(f"/console/agent/requests/{req.pk}/assign-me/", {"version": seen})
    response = client_for(agent).post(
        f"/console/agent/requests/{req.pk}/reply/", {"reply-body": "I'm on it", "reply-version": seen}
    )
    assert response.status_code == 409
    content = response.content.decode()
    assert "Someone else changed this request while you were looking at it (Bob Colleague: assigned)" in content
    assert "I&#x27;m on it</textarea>" in content  # the text is kept for a second try
    assert RequestMessage.objects.filter(request=req).count() == 0
    req.refresh_from_db()
    assert req.assignee_id == colleague.pk


def test_a_refused_transition_is_shown_and_changes_nothing(agent, member):
    req = _req(member)
    response = client_for(agent).post(
        f"/console/agent/requests/{req.pk}/transition/",
        {"transition-to_status": "fulfilled", "transition-version": _version(req)},
    )
    assert response.status_code == 409
    assert "A request cannot go from new to fulfilled." in response.content.decode()
    req.refresh_from_db()
    assert req.status == "new"


def test_empty_reply_is_refused_beside_the_field(agent, member):
    req = _req(member)
    response = client_for(agent).post(
        f"/console/agent/requests/{req.pk}/reply/", {"reply-body": "", "reply-version": _version(req)}
    )
    assert response.status_code == 400
    assert response.context["reply_form"].errors == {"body": ["This field is required."]}


def test_unknown_request_is_404(agent):
    assert client_for(agent).get("/console/agent/requests/999999/").status_code == 404


@pytest.mark.parametrize("role", ["partner_staff", "programme_manager", "member"])
def test_non_agents_are_refused_every_agent_page_and_nothing_changes(role, member):
    from tests.factories import UserFactory

    req = _req(member)
    client = client_for(UserFactory(roles=[role]))
    assert client.get("/console/agent/queue/").status_code == 403
    assert client.get(f"/console/agent/requests/{req.pk}/").status_code == 403
    for action, data in (
        ("assign-me", {"version": _version(req)}),
        ("reply", {"reply-body": "x", "reply-version": _version(req)}),
        ("transition", {"transition-to_status": "acknowledged", "transition-version": _version(req)}),
    ):
        assert client.post(f"/console/agent/requests/{req.pk}/{action}/", data).status_code == 403
    req.refresh_from_db()
    assert (req.status, req.assignee_id, req.messages.count()) == ("new", None, 0)


def test_anonymous_is_sent_to_login_from_agent_pages(client, member):
    req = _req(member)
    r = client.post(f"/console/agent/requests/{req.pk}/assign-me/", {"version": _version(req)})
    assert r.status_code == 302 and r["Location"].startswith("/console/login/")
    req.refresh_from_db()
    assert req.assignee_id is None


def test_assign_to_me_after_a_colleague_took_it_shows_the_conflict(agent, colleague, member):
    req = _req(member)
    seen = _version(req)
    client_for(colleague).post(f"/console/agent/requests/{req.pk}/assign-me/", {"version": seen})
    response = client_for(agent).post(f"/console/agent/requests/{req.pk}/assign-me/", {"version": seen})
    assert response.status_code == 409
    content = response.content.decode()
    assert "(Bob Colleague: assigned). Nothing was saved" in content
    assert 'id="assignee">Bob Colleague</strong>' in content
    req.refresh_from_db()
    assert req.assignee_id == colleague.pk
