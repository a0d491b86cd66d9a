from datetime import timedelta

import pytest

from concierge.models import ConciergeRequest, RequestEvent, RequestStatus
from concierge.services.requests import TRANSITIONS, request_transition
from core.errors import Conflict
from tests.concierge.factories import NOW, make_member, make_request
from tests.conftest import api_as

pytestmark = pytest.mark.django_db

S = RequestStatus
# The shortest path of agent transitions from `new` to each status.
PATH = {
    S.NEW: [],
    S.ACKNOWLEDGED: [S.ACKNOWLEDGED],
    S.IN_PROGRESS: [S.ACKNOWLEDGED, S.IN_PROGRESS],
    S.AWAITING_MEMBER: [S.ACKNOWLEDGED, S.IN_PROGRESS, S.AWAITING_MEMBER],
    S.FULFILLED: [S.ACKNOWLEDGED, S.IN_PROGRESS, S.FULFILLED],
    S.DECLINED: [S.DECLINED],
    S.CANCELLED: [S.CANCELLED],
}
ALLOWED = {
    (S.NEW, S.ACKNOWLEDGED),
    (S.NEW, S.DECLINED),
    (S.NEW, S.CANCELLED),
    (S.ACKNOWLEDGED, S.IN_PROGRESS),
    (S.ACKNOWLEDGED, S.DECLINED),
    (S.ACKNOWLEDGED, S.CANCELLED),
    (S.IN_PROGRESS, S.AWAITING_MEMBER),
    (S.IN_PROGRESS, S.FULFILLED),
    (S.IN_PROGRESS, S.DECLINED),
    (S.IN_PROGRESS, S.CANCELLED),
    (S.AWAITING_MEMBER, S.IN_PROGRESS),
    (S.AWAITING_MEMBER, S.FULFILLED),
    (S.AWAITING_MEMBER, S.DECLINED),
    (S.AWAITING_MEMBER, S.CANCELLED),
}
ALL_PAIRS = [(a, b) for a in S for b in S]


def test_the_transition_table_is_exactly_the_designed_one():
    assert {(a, b) for a, targets in TRANSITIONS.items() for b in targets} == ALLOWED


def _at(agent, status):
    user, _ = make_member()
    request = make_request(user)
    for i, step in enumerate(PATH[status]):
        request_transition(request_id=request.pk, actor=agent, to_status=step, now=NOW + timedelta(minutes=i + 1))
    return request


@pytest.mark.parametrize("old,new", sorted(ALLOWED))
def test_allowed_transition_through_the_api_writes_its_audit_row(agent, agent_api, old, new):
    request = _at(agent, old)
    before = RequestEvent.objects.filter(request=request).count()

    response = agent_api.post(f"concierge/agent/requests/{request.pk}/transition", {"to": new, "note": "why"})

    assert response.status_code == 200, response.content
    assert response.json()["status"] == new
    request.refresh_from_db()
    assert request.status == new
    events = list(RequestEvent.objects.filter(request=request).order_by("id"))
    assert len(events) == before + 1
    last = events[-1]
    assert (last.actor_id, last.action, last.field, last.old_value, last.new_value, last.note) == (
        agent.pk,
        "status_changed",
        "status",
        old,
        new,
        "why",
    )
    if new in (S.FULFILLED, S.DECLINED):
        assert request.resolved_at is not None and request.closed_at == request.resolved_at
        assert request.due_at is None
    elif new == S.CANCELLED:
        assert request.resolved_at is None and request.closed_at is not None and request.due_at is None
    else:
        assert request.closed_at is None and request.due_at == request.first_response_due_at


@pytest.mark.parametrize("old,new", [pair for pair in ALL_PAIRS if pair not in ALLOWED])
def test_refused_transition_is_409_and_changes_nothing(agent, agent_api, old, new):
    request = _at(agent, old)
    before_row = ConciergeRequest.objects.values().get(pk=request.pk)
    before_events = RequestEvent.objects.count()

    response = agent_api.post(f"concierge/agent/requests/{request.pk}/transition", {"to": new})

    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "invalid_transition"
    assert body["fields"]["from"] == old and body["fields"]["to"] == new
    assert body["fields"]["allowed"] == list(TRANSITIONS[old])
    assert ConciergeRequest.objects.values().get(pk=request.pk) == before_row
    assert RequestEvent.objects.count() == before_events


def test_service_refuses_with_conflict_code(agent):
    request = _at(agent, S.FULFILLED)
    with pytest.raises(Conflict) as exc:
        request_transition(request_id=request.pk, actor=agent, to_status=S.IN_PROGRESS, now=NOW)
    assert exc.value.code == "invalid_transition"


def test_created_request_has_a_created_event(agent):
    user, _ = make_member()
    request = make_request(user)
    assert list(RequestEvent.objects.filter(request=request).values_list("actor", "action", "new_value", "at")) == [
        (user.pk, "created", "new", NOW)
    ]


def test_member_cancels_own_open_request_with_audit(agent):
    user, _ = make_member()
    request = make_request(user)
    api = api_as(user)

    response = api.post(f"concierge/requests/{request.pk}/cancel")

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    last = RequestEvent.objects.filter(request=request).latest("id")
    assert (last.actor_id, last.old_value, last.new_value) == (user.pk, "new", "cancelled")
    again = api.post(f"concierge/requests/{request.pk}/cancel")
    assert again.status_code == 409 and again.json()["code"] == "invalid_transition"


def test_member_reply_moves_awaiting_member_back_to_in_progress(agent):
    request = _at(agent, S.AWAITING_MEMBER)
    owner = request.membership.customer.user
    response = api_as(owner).post(f"concierge/requests/{request.pk}/replies", {"body": "Friday works."})
    assert response.status_code == 201
    request.refresh_from_db()
    assert request.status == S.IN_PROGRESS
    actions = list(RequestEvent.objects.filter(request=request).order_by("id").values_list("action", "new_value"))
    assert actions[-2:] == [("member_replied", f"message {response.json()['id']}"), ("status_changed", "in_progress")]


@pytest.mark.parametrize("status", [S.NEW, S.IN_PROGRESS, S.CANCELLED])
def test_rating_refused_unless_fulfilled_or_declined(agent, status):
    request = _at(agent, status)
    owner = request.membership.customer.user
    response = api_as(owner).post(f"concierge/requests/{request.pk}/rating", {"rating": 5})
    assert response.status_code == 409
    assert response.json()["code"] == "request_not_rateable"
    request.refresh_from_db()
    assert request.rating is None
    assert not RequestEvent.objects.filter(request=request, action="rated").exists()


@pytest.mark.parametrize("status", [S.FULFILLED, S.DECLINED])
def test_rating_once_when_resolved_records_an_interaction(agent, status):
    from loyalty.models import Interaction

    request = _at(agent, status)
    owner = request.membership.customer.user
    api = api_as(owner)

    response = api.post(f"concierge/requests/{request.pk}/rating", {"rating": 4, "comment": "Lovely"})
    assert response.status_code == 200
    assert (response.json()["rating"], response.json()["rating_comment"]) == (4, "Lovely")
    second = api.post(f"concierge/requests/{request.pk}/rating", {"rating": 1})
    assert second.status_code == 409 and second.json()["code"] == "already_rated"
    request.refresh_from_db()
    assert request.rating == 4
    assert RequestEvent.objects.filter(request=request, action="rated").count() == 1
    interaction = Interaction.objects.get(external_id=f"concierge-rating-{request.pk}")
    assert (interaction.channel, interaction.kind, interaction.customer_id) == (
        "concierge",
        "request_rated",
        request.membership.customer_id,
    )


@pytest.mark.parametrize("rating", [0, 6])
def test_rating_out_of_range_is_422(agent, rating):
    request = _at(agent, S.FULFILLED)
    owner = request.membership.customer.user
    response = api_as(owner).post(f"concierge/requests/{request.pk}/rating", {"rating": rating})
    assert response.status_code == 422
    assert list(response.json()["fields"]) == ["rating"]


def test_replies_on_a_closed_request_are_409(agent, agent_api):
    request = _at(agent, S.DECLINED)
    owner = request.membership.customer.user
    member = api_as(owner).post(f"concierge/requests/{request.pk}/replies", {"body": "hello?"})
    agent_reply = agent_api.post(f"concierge/agent/requests/{request.pk}/replies", {"body": "hello"})
    assert (member.status_code, member.json()["code"]) == (409, "request_closed")
    assert (agent_reply.status_code, agent_reply.json()["code"]) == (409, "request_closed")
    assert request.messages.count() == 0
