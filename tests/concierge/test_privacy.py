"""A member never sees another member's requests or any internal note; every denied call changes nothing."""

from datetime import timedelta

import pytest

from concierge.models import ConciergeRequest, RequestEvent, RequestMessage
from concierge.services.messages import message_agent_reply, note_add
from concierge.services.requests import request_transition
from tests.concierge.factories import NOW, make_member, make_request
from tests.conftest import api_as

pytestmark = pytest.mark.django_db


def _snapshot():
    return (
        list(ConciergeRequest.objects.order_by("id").values()),
        list(RequestMessage.objects.order_by("id").values()),
        list(RequestEvent.objects.order_by("id").values()),
    )


@pytest.fixture
def two_members(agent):
    alice, _ = make_member(name="Alice Martin")
    bob, _ = make_member(name="Bob Stone")
    a_req = make_request(alice, subject="Alice private", visibility="private")
    b_req = make_request(bob, subject="Bob public", visibility="public")
    for req in (a_req, b_req):
        message_agent_reply(request_id=req.pk, agent=agent, body="On it", now=NOW + timedelta(minutes=5))
        note_add(request_id=req.pk, agent=agent, body="SECRET NOTE", now=NOW + timedelta(minutes=6))
    for step in ("in_progress", "fulfilled"):  # the agent's reply acknowledged it
        request_transition(request_id=b_req.pk, actor=agent, to_status=step, now=NOW + timedelta(hours=1))
    return alice, bob, a_req, b_req


def test_list_shows_only_own_requests(two_members):
    alice, bob, a_req, b_req = two_members
    body = api_as(alice).get("concierge/requests").json()
    assert body["count"] == 1
    assert [item["id"] for item in body["items"]] == [a_req.pk]
    assert "SECRET" not in str(body)


def test_detail_of_own_request_has_the_conversation_without_internal_notes(two_members):
    alice, bob, a_req, b_req = two_members
    response = api_as(alice).get(f"concierge/requests/{a_req.pk}")
    assert response.status_code == 200
    messages = response.json()["messages"]
    assert [(m["body"], m["from_agent"]) for m in messages] == [("On it", True)]
    assert "SECRET NOTE" not in response.content.decode()
    assert "internal" not in messages[0]


def test_another_members_request_is_404_everywhere_and_changes_nothing(two_members):
    alice, bob, a_req, b_req = two_members
    api = api_as(alice)
    before = _snapshot()
    calls = [
        api.get(f"concierge/requests/{b_req.pk}"),
        api.post(f"concierge/requests/{b_req.pk}/replies", {"body": "hi"}),
        api.post(f"concierge/requests/{b_req.pk}/cancel"),
        api.post(f"concierge/requests/{b_req.pk}/rating", {"rating": 1}),
    ]
    assert [(r.status_code, r.json()["code"]) for r in calls] == [(404, "request_not_found")] * 4
    assert "Bob" not in "".join(r.content.decode() for r in calls)
    assert _snapshot() == before


def test_members_cannot_use_agent_or_manager_operations(two_members):
    alice, bob, a_req, b_req = two_members
    api = api_as(alice)
    before = _snapshot()
    calls = [
        api.get("concierge/agent/queue"),
        api.get(f"concierge/agent/requests/{a_req.pk}"),
        api.get(f"concierge/agent/requests/{a_req.pk}/events"),
        api.get(f"concierge/agent/requests/{a_req.pk}/sla"),
        api.post(f"concierge/agent/requests/{a_req.pk}/assign", {}),
        api.post(f"concierge/agent/requests/{a_req.pk}/unassign"),
        api.post(f"concierge/agent/requests/{a_req.pk}/transition", {"to": "declined"}),
        api.post(f"concierge/agent/requests/{a_req.pk}/replies", {"body": "x"}),
        api.post(f"concierge/agent/requests/{a_req.pk}/notes", {"body": "x"}),
        api.get("concierge/reports/sla"),
    ]
    assert [(r.status_code, r.json()["code"]) for r in calls] == [(403, "role_required")] * len(calls)
    assert "SECRET" not in "".join(r.content.decode() for r in calls)
    assert _snapshot() == before


def test_anonymous_callers_get_401(anon_api, two_members):
    before = _snapshot()
    calls = [
        anon_api.get("concierge/requests"),
        anon_api.post("concierge/requests", {"category": "dining", "subject": "x"}),
        anon_api.get("concierge/public-feed"),
        anon_api.get("concierge/agent/queue"),
    ]
    assert [r.status_code for r in calls] == [401] * 4
    assert _snapshot() == before


def test_public_feed_shows_only_fulfilled_public_requests_with_first_name_and_initial(two_members, agent):
    alice, bob, a_req, b_req = two_members
    # Alice's private request fulfilled: never in the feed. A public but open request: not yet.
    for step in ("in_progress", "fulfilled"):  # the agent's reply acknowledged it
        request_transition(request_id=a_req.pk, actor=agent, to_status=step, now=NOW + timedelta(hours=2))
    make_request(alice, subject="Alice public open", visibility="public")

    response = api_as(alice).get("concierge/public-feed")

    assert response.status_code == 200
    assert response.json() == {
        "items": [
            {
                "id": b_req.pk,
                "category": "dining",
                "subject": "Bob public",
                "member": "Bob S.",
                "fulfilled_at": "2026-03-10T13:00:00Z",
            }
        ],
        "count": 1,
    }
    text = response.content.decode()
    assert "Stone" not in text and "SECRET" not in text and "On it" not in text


def test_agents_see_internal_notes(two_members, agent_api):
    alice, bob, a_req, b_req = two_members
    messages = agent_api.get(f"concierge/agent/requests/{a_req.pk}").json()["messages"]
    assert [(m["body"], m["internal"]) for m in messages] == [("On it", False), ("SECRET NOTE", True)]


def test_member_display_name():
    from concierge.selectors import member_display_name

    assert member_display_name("Ada Lovelace") == "Ada L."
    assert member_display_name("Jean Paul van der berg") == "Jean B."
    assert member_display_name("Cher") == "Cher"
    assert member_display_name("  ") == "A member"


# 2 queries authenticate the session token (session row, user); then the page, which ends the list (no COUNT).
AUTH_QUERIES = 2


@pytest.mark.parametrize("n", [3, 20])
def test_member_list_query_count_does_not_grow_with_the_page(django_assert_num_queries, agent, n):
    user, _ = make_member(monthly_request_allowance=50)
    for i in range(n):
        request = make_request(user, subject=f"r{i}", now=NOW + timedelta(minutes=i))
        message_agent_reply(request_id=request.pk, agent=agent, body="hi", now=NOW + timedelta(minutes=i, seconds=1))
    api = api_as(user)
    with django_assert_num_queries(AUTH_QUERIES + 1):
        body = api.get("concierge/requests").json()
    assert body["count"] == n and len(body["items"]) == n


@pytest.mark.parametrize("n", [2, 12])
def test_public_feed_query_count(django_assert_num_queries, agent, n):
    user, _ = make_member(monthly_request_allowance=50)
    for i in range(n):
        request = make_request(user, subject=f"r{i}", visibility="public", now=NOW + timedelta(minutes=i))
        for step in ("acknowledged", "in_progress", "fulfilled"):
            request_transition(request_id=request.pk, actor=agent, to_status=step, now=NOW + timedelta(hours=1))
    api = api_as(user)
    with django_assert_num_queries(AUTH_QUERIES + 1):
        body = api.get("concierge/public-feed").json()
    assert body["count"] == n and {item["member"] for item in body["items"]} == {"Ada L."}
