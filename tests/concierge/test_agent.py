import threading
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection

from concierge.models import ConciergeRequest, RequestEvent
from concierge.services.assignment import request_assign
from concierge.services.messages import message_agent_reply, note_add
from concierge.services.requests import request_transition
from core.errors import Conflict
from tests.concierge.factories import NOW, make_member, make_request
from tests.conftest import api_as
from tests.factories import TierFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def tiers():
    gold = TierFactory(rank=3, name="Gold", first_response_sla_hours=1, resolution_sla_hours=8)
    silver = TierFactory(
        programme=gold.programme, rank=2, name="Silver", first_response_sla_hours=4, resolution_sla_hours=48
    )
    return gold, silver


def test_queue_orders_by_due_time_then_priority_and_hides_closed(agent, agent_api, tiers):
    gold, silver = tiers
    g_user, _ = make_member(tier=gold, name="Gus Gold")
    s_user, _ = make_member(tier=silver, name="Sam Silver")
    s_early = make_request(s_user, now=NOW - timedelta(hours=4), subject="silver early")  # due NOW
    g_late = make_request(g_user, now=NOW, subject="gold late")  # due NOW+1h
    s_same = make_request(s_user, now=NOW - timedelta(hours=3), subject="silver same")  # due NOW+1h, lower prio
    closed = make_request(g_user, now=NOW - timedelta(hours=10), subject="closed")
    request_transition(request_id=closed.pk, actor=agent, to_status="declined", now=NOW)

    body = agent_api.get("concierge/agent/queue").json()

    assert body["count"] == 3
    assert [item["id"] for item in body["items"]] == [s_early.pk, g_late.pk, s_same.pk]
    first = body["items"][1]
    assert (first["priority"], first["tier"], first["member_name"], first["assignee_id"]) == (
        3,
        "Gold",
        "Gus Gold",
        None,
    )


def test_queue_filters(agent, agent_api, tiers):
    gold, _ = tiers
    other_agent = UserFactory(roles=["concierge_agent"])
    user, _ = make_member(tier=gold, monthly_request_allowance=10)
    dining = make_request(user, category="dining")
    travel = make_request(user, category="travel")
    mine = make_request(user, category="gifts")
    theirs = make_request(user, category="tickets")
    request_assign(request_id=mine.pk, actor=agent, now=NOW)
    request_assign(request_id=theirs.pk, actor=other_agent, now=NOW)
    request_transition(request_id=travel.pk, actor=agent, to_status="acknowledged", now=NOW)
    ConciergeRequest.objects.filter(pk=dining.pk).update(first_response_breached=True)

    def ids(query):
        response = agent_api.get(f"concierge/agent/queue?{query}")
        assert response.status_code == 200, response.content
        return sorted(item["id"] for item in response.json()["items"])

    assert ids("category=travel") == [travel.pk]
    assert ids("status=acknowledged") == [travel.pk]
    assert ids("breached=true") == [dining.pk]
    assert ids("breached=false") == sorted([travel.pk, mine.pk, theirs.pk])
    assert ids("assignee=me") == [mine.pk]
    assert ids(f"assignee={other_agent.pk}") == [theirs.pk]
    assert ids("assignee=none") == sorted([dining.pk, travel.pk])
    bad = agent_api.get("concierge/agent/queue?assignee=bob")
    assert bad.status_code == 422 and list(bad.json()["fields"]) == ["assignee"]


@pytest.mark.parametrize("n", [2, 15])
def test_queue_query_count_does_not_grow(agent, agent_api, django_assert_num_queries, tiers, n):
    gold, _ = tiers
    for i in range(n):
        user, _ = make_member(tier=gold, name=f"Member {i}")
        request = make_request(user)
        request_assign(request_id=request.pk, actor=agent, now=NOW)
    # 2 queries authenticate the token, 1 reads the roles; then the page (it ends the list: no COUNT).
    with django_assert_num_queries(4):
        body = agent_api.get("concierge/agent/queue").json()
    assert body["count"] == n
    assert {item["assignee_email"] for item in body["items"]} == {agent.email}


def test_assign_unassign_with_audit(agent, agent_api):
    user, _ = make_member()
    request = make_request(user)
    other = UserFactory(roles=["concierge_agent"])

    assigned = agent_api.post(f"concierge/agent/requests/{request.pk}/assign", {})
    again = agent_api.post(f"concierge/agent/requests/{request.pk}/assign", {})
    taken = api_as(other).post(f"concierge/agent/requests/{request.pk}/assign", {})
    assert assigned.status_code == 200 and assigned.json()["assignee_id"] == agent.pk
    assert again.status_code == 200
    assert (taken.status_code, taken.json()["code"], taken.json()["fields"]) == (
        409,
        "already_assigned",
        {"assignee_id": agent.pk},
    )
    unassigned = agent_api.post(f"concierge/agent/requests/{request.pk}/unassign")
    assert unassigned.status_code == 200 and unassigned.json()["assignee_id"] is None
    twice = agent_api.post(f"concierge/agent/requests/{request.pk}/unassign")
    assert (twice.status_code, twice.json()["code"]) == (409, "not_assigned")
    to_other = agent_api.post(f"concierge/agent/requests/{request.pk}/assign", {"assignee_id": other.pk})
    assert to_other.status_code == 200 and to_other.json()["assignee_id"] == other.pk

    events = list(
        RequestEvent.objects.filter(request=request, action__in=["assigned", "unassigned"])
        .order_by("id")
        .values_list("actor", "action", "old_value", "new_value")
    )
    assert events == [
        (agent.pk, "assigned", "", str(agent.pk)),
        (agent.pk, "unassigned", str(agent.pk), ""),
        (agent.pk, "assigned", "", str(other.pk)),
    ]


def test_assign_to_a_non_agent_is_400_and_changes_nothing(agent, agent_api):
    user, _ = make_member()
    request = make_request(user)
    response = agent_api.post(f"concierge/agent/requests/{request.pk}/assign", {"assignee_id": user.pk})
    assert (response.status_code, response.json()["code"]) == (400, "assignee_not_agent")
    request.refresh_from_db()
    assert request.assignee_id is None
    assert not RequestEvent.objects.filter(action="assigned").exists()


def test_assign_closed_request_is_409(agent, agent_api):
    user, _ = make_member()
    request = make_request(user)
    request_transition(request_id=request.pk, actor=agent, to_status="declined", now=NOW)
    response = agent_api.post(f"concierge/agent/requests/{request.pk}/assign", {})
    assert (response.status_code, response.json()["code"]) == (409, "request_closed")


def test_unknown_request_is_404_for_agents(agent_api):
    assert agent_api.get("concierge/agent/requests/999").status_code == 404
    assert agent_api.post("concierge/agent/requests/999/assign", {}).status_code == 404
    assert agent_api.post("concierge/agent/requests/999/transition", {"to": "acknowledged"}).status_code == 404


def test_first_public_reply_is_the_first_response_notes_are_not(agent, agent_api):
    user, _ = make_member(first_response_sla_hours=2, resolution_sla_hours=24)
    request = make_request(user)
    note = agent_api.post(f"concierge/agent/requests/{request.pk}/notes", {"body": "call the restaurant"})
    assert note.status_code == 201 and note.json()["internal"] is True
    request.refresh_from_db()
    assert request.first_response_at is None

    message_agent_reply(request_id=request.pk, agent=agent, body="Booked!", now=NOW + timedelta(hours=1))
    message_agent_reply(request_id=request.pk, agent=agent, body="See you", now=NOW + timedelta(hours=3))
    request.refresh_from_db()
    assert request.first_response_at == NOW + timedelta(hours=1)
    assert request.first_response_breached is False
    assert request.due_at == request.resolution_due_at
    assert RequestEvent.objects.filter(request=request, action="first_response").count() == 1

    sla = agent_api.get(f"concierge/agent/requests/{request.pk}/sla").json()
    assert sla["first_response"]["met"] is True
    assert sla["first_response"]["done_at"] == "2026-03-10T13:00:00Z"
    assert sla["resolution"]["due_at"] == "2026-03-11T12:00:00Z"


def test_first_public_reply_acknowledges_a_new_request(agent, agent_api, django_capture_on_commit_callbacks):
    user, _ = make_member(first_response_sla_hours=2, resolution_sla_hours=24)
    request = make_request(user)
    note_add(request_id=request.pk, agent=agent, body="call the restaurant", now=NOW + timedelta(minutes=5))
    request.refresh_from_db()
    assert request.status == "new"
    with django_capture_on_commit_callbacks(execute=True):
        message_agent_reply(request_id=request.pk, agent=agent, body="On it!", now=NOW + timedelta(hours=1))
    request.refresh_from_db()
    assert (request.status, request.first_response_at) == ("acknowledged", NOW + timedelta(hours=1))
    events = list(
        RequestEvent.objects.filter(request=request)
        .order_by("id")
        .values_list("actor", "action", "old_value", "new_value", "note")
    )
    assert events == [
        (user.pk, "created", "", "new", ""),
        (agent.pk, "note_added", "", events[1][3], ""),
        (agent.pk, "agent_replied", "", events[2][3], ""),
        (agent.pk, "first_response", "", (NOW + timedelta(hours=1)).isoformat(), ""),
        (agent.pk, "status_changed", "new", "acknowledged", "Acknowledged by the agent's first reply."),
    ]
    # One email to the member: the reply (it is the acknowledgement).
    assert [(m.to, m.subject) for m in mail.outbox] == [
        ([user.email], f"New reply on your request #{request.pk} A table for two"),
    ]
    detail = agent_api.get(f"concierge/agent/requests/{request.pk}").json()
    assert detail["status"] == "acknowledged"
    # Later replies change no status.
    request_transition(request_id=request.pk, actor=agent, to_status="in_progress", now=NOW + timedelta(hours=2))
    message_agent_reply(request_id=request.pk, agent=agent, body="Booked", now=NOW + timedelta(hours=3))
    request.refresh_from_db()
    assert (request.status, request.first_response_at) == ("in_progress", NOW + timedelta(hours=1))


def test_late_first_reply_marks_the_breach(agent):
    user, _ = make_member(first_response_sla_hours=1, resolution_sla_hours=24)
    request = make_request(user)
    message_agent_reply(request_id=request.pk, agent=agent, body="Sorry", now=NOW + timedelta(hours=2))
    request.refresh_from_db()
    assert request.first_response_breached is True


def test_events_endpoint_lists_the_audit_for_agents_and_managers(agent, agent_api, manager_api):
    user, _ = make_member()
    request = make_request(user)
    request_transition(request_id=request.pk, actor=agent, to_status="acknowledged", now=NOW)
    for api in (agent_api, manager_api):
        body = api.get(f"concierge/agent/requests/{request.pk}/events").json()
        assert [(e["action"], e["old_value"], e["new_value"]) for e in body["items"]] == [
            ("created", "", "new"),
            ("status_changed", "new", "acknowledged"),
        ]


def test_audit_has_no_write_operations(client):
    schema = client.get("/api/v1/openapi.json").json()
    for path, operations in schema["paths"].items():
        if path.startswith("/api/v1/concierge/") and path.endswith("/events"):
            assert set(operations) == {"get"}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_assignment_one_wins_the_other_gets_409():
    agents = [UserFactory(roles=["concierge_agent"]) for _ in range(6)]
    user, _ = make_member()
    request = make_request(user)
    barrier = threading.Barrier(len(agents))
    outcomes: dict[int, str] = {}

    def worker(agent) -> None:
        try:
            barrier.wait()
            try:
                request_assign(request_id=request.pk, actor=agent, now=NOW)
                outcomes[agent.pk] = "won"
            except Conflict as exc:
                outcomes[agent.pk] = exc.code
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(a,)) for a in agents]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    winners = [pk for pk, result in outcomes.items() if result == "won"]
    assert len(winners) == 1
    assert sorted(outcomes.values()) == ["already_assigned"] * (len(agents) - 1) + ["won"]
    request.refresh_from_db()
    assert request.assignee_id == winners[0]
    assert RequestEvent.objects.filter(request=request, action="assigned").count() == 1


@pytest.mark.parametrize("n", [1, 10])
def test_events_list_query_count(agent, agent_api, django_assert_num_queries, n):
    user, _ = make_member()
    request = make_request(user)
    for i in range(n):
        message_agent_reply(request_id=request.pk, agent=agent, body=f"m{i}", now=NOW + timedelta(minutes=i))
    # 2 auth (session, user) + 1 roles + 1 existence check + page (no COUNT: it ends the list)
    with django_assert_num_queries(5):
        body = agent_api.get(f"concierge/agent/requests/{request.pk}/events").json()
    assert body["count"] == 1 + n + 2  # created, n replies, first response, acknowledged by the first reply


def test_agent_directory_lists_active_agents_with_their_open_assigned_requests(agent, agent_api):
    agent.first_name, agent.last_name = "Zoe", "Zimmer"
    agent.save()
    busy = UserFactory(roles=["concierge_agent"], first_name="Amir", last_name="Haddad", email="amir@example.test")
    idle = UserFactory(roles=["concierge_agent"], first_name="Bea", last_name="Lund", email="bea@example.test")
    UserFactory(roles=["concierge_agent"], first_name="Gone", is_active=False)
    UserFactory(roles=["programme_manager"], first_name="Mona")
    user, _ = make_member(monthly_request_allowance=10)
    first, second, done = (make_request(user, subject=s) for s in ("one", "two", "done"))
    for request in (first, second, done):
        request_assign(request_id=request.pk, actor=busy, now=NOW)
    request_transition(request_id=done.pk, actor=busy, to_status="declined", now=NOW)

    response = agent_api.get("concierge/agent/agents")

    assert response.status_code == 200
    assert response.json() == {
        "items": [
            {"id": busy.pk, "name": "Amir Haddad", "email": "amir@example.test", "open_assigned": 2},
            {"id": idle.pk, "name": "Bea Lund", "email": "bea@example.test", "open_assigned": 0},
            {"id": agent.pk, "name": "Zoe Zimmer", "email": agent.email, "open_assigned": 0},
        ],
        "count": 3,
    }
    assert [a["id"] for a in agent_api.get("concierge/agent/agents?q=LUND").json()["items"]] == [idle.pk]
    assert [a["id"] for a in agent_api.get("concierge/agent/agents?q=amir@").json()["items"]] == [busy.pk]
    for role in ("member", "programme_manager", "partner_staff"):
        denied = api_as(UserFactory(roles=[role])).get("concierge/agent/agents")
        assert (denied.status_code, denied.json()["code"]) == (403, "role_required")


@pytest.mark.parametrize("n", [1, 8])
def test_agent_directory_query_count_does_not_grow(agent_api, django_assert_num_queries, n):
    user, _ = make_member(monthly_request_allowance=20)
    for _ in range(n):
        colleague = UserFactory(roles=["concierge_agent"])
        request_assign(request_id=make_request(user).pk, actor=colleague, now=NOW)
    # 2 auth (session, user) + 1 roles + page (no COUNT: it ends the list)
    with django_assert_num_queries(4):
        body = agent_api.get("concierge/agent/agents").json()
    assert body["count"] == n + 1


def test_assign_to_a_colleague_chosen_from_the_directory_by_id_or_email(agent, agent_api):
    colleague = UserFactory(roles=["concierge_agent"], email="kim@example.test")
    user, _ = make_member(monthly_request_allowance=10)
    by_id, by_email, both, stranger = (make_request(user, subject=s) for s in ("id", "email", "both", "stranger"))
    chosen = agent_api.get("concierge/agent/agents?q=kim").json()["items"][0]

    response = agent_api.post(f"concierge/agent/requests/{by_id.pk}/assign", {"assignee_id": chosen["id"]})
    assert (response.status_code, response.json()["assignee_id"]) == (200, colleague.pk)
    response = agent_api.post(f"concierge/agent/requests/{by_email.pk}/assign", {"assignee_email": "KIM@example.test"})
    assert (response.status_code, response.json()["assignee_email"]) == (200, "kim@example.test")
    assert RequestEvent.objects.filter(action="assigned", new_value=str(colleague.pk)).count() == 2

    response = agent_api.post(
        f"concierge/agent/requests/{both.pk}/assign", {"assignee_id": colleague.pk, "assignee_email": colleague.email}
    )
    assert (response.status_code, response.json()["code"]) == (422, "validation_error")
    response = agent_api.post(f"concierge/agent/requests/{stranger.pk}/assign", {"assignee_email": user.email})
    assert response.status_code == 400
    assert response.json() == {
        "detail": "The assignee must be an active concierge agent.",
        "code": "assignee_not_agent",
        "fields": {"assignee_email": ["Not an active concierge agent."]},
    }
    assert ConciergeRequest.objects.filter(pk__in=[both.pk, stranger.pk], assignee__isnull=False).count() == 0
