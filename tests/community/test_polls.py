"""Polls and news: managers post; members answer once; results after answering or closing; comments."""

from datetime import timedelta

import pytest
from django.utils import timezone

from community.models import Comment, Poll, PollAnswer
from community.services.polls import poll_create
from loyalty.customers.models import Interaction
from tests.community.factories import make_control, make_member, make_stranger
from tests.conftest import api_as

pytestmark = pytest.mark.django_db


def _poll(**kw):
    data = {
        "kind": "poll",
        "title": "Next lounge city?",
        "options": ["Paris", "Rome", "Oslo"],
        "closes_at": timezone.now() + timedelta(days=7),
        **kw,
    }
    return poll_create(**data)


def test_manager_posts_member_answers_once_and_sees_results(manager_api, agent_api):
    closes = (timezone.now() + timedelta(days=3)).isoformat()
    created = manager_api.post(
        "community/polls", {"title": "Next lounge city?", "options": ["Paris", "Rome"], "closes_at": closes}
    )
    assert created.status_code == 201, created.content
    poll = created.json()
    assert [o["label"] for o in poll["options"]] == ["Paris", "Rome"]
    assert (
        agent_api.post("community/polls", {"title": "x", "options": ["a", "b"], "closes_at": closes}).status_code == 403
    )
    bad = manager_api.post("community/polls", {"title": "x", "options": ["a"], "closes_at": closes})
    assert (bad.status_code, bad.json()["fields"]) == (422, {"options": ["A poll has 2 to 10 options."]})

    user, membership = make_member(name="Ada Lovelace")
    other, _ = make_member()
    api = api_as(user)
    before = api.get(f"community/polls/{poll['id']}").json()
    assert before["results_visible"] is False
    assert [o["answers"] for o in before["options"]] == [None, None]
    assert before["total_answers"] is None
    api_as(other).post(f"community/polls/{poll['id']}/answers", {"option_id": poll["options"][1]["id"]})
    answered = api.post(f"community/polls/{poll['id']}/answers", {"option_id": poll["options"][0]["id"]})
    assert answered.status_code == 200, answered.content
    body = answered.json()
    assert (body["results_visible"], body["my_option_id"], body["total_answers"]) == (True, poll["options"][0]["id"], 2)
    assert [o["answers"] for o in body["options"]] == [1, 1]
    again = api.post(f"community/polls/{poll['id']}/answers", {"option_id": poll["options"][1]["id"]})
    assert (again.status_code, again.json()["code"]) == (409, "already_answered")
    assert PollAnswer.objects.filter(customer=membership.customer).count() == 1
    assert Interaction.objects.filter(customer=membership.customer, channel="social", kind="poll_answered").count() == 1
    wrong = api.post(f"community/polls/{poll['id']}/answers", {"option_id": 10**9})
    assert (wrong.status_code, wrong.json()["fields"]) == (422, {"option_id": ["Unknown option."]})

    comment = api.post(f"community/polls/{poll['id']}/comments", {"body": "Rome please"})
    assert comment.status_code == 201
    assert [(c["author"], c["body"]) for c in api.get(f"community/polls/{poll['id']}").json()["comments"]] == [
        ("Ada L.", "Rome please")
    ]


def test_closed_poll_shows_results_to_everyone_and_takes_nothing():
    poll = _poll()
    user, _ = make_member()
    api_as(user).post(f"community/polls/{poll.pk}/answers", {"option_id": poll.options.first().pk})
    Poll.objects.filter(pk=poll.pk).update(closes_at=timezone.now() - timedelta(seconds=1))
    late_user, _ = make_member()
    late = api_as(late_user)
    body = late.get(f"community/polls/{poll.pk}").json()
    assert (body["closed"], body["results_visible"], [o["answers"] for o in body["options"]]) == (True, True, [1, 0, 0])
    answer = late.post(f"community/polls/{poll.pk}/answers", {"option_id": poll.options.first().pk})
    assert (answer.status_code, answer.json()["code"]) == (409, "poll_closed")
    assert late.post(f"community/polls/{poll.pk}/comments", {"body": "late"}).json()["code"] == "poll_closed"
    assert PollAnswer.objects.count() == 1


def test_news_takes_comments_not_answers_and_control_is_a_stranger(anon_api):
    news = _poll(kind="news", title="New lounge in Rome", options=[])
    control_user, _ = make_control()
    control, stranger = api_as(control_user), api_as(make_stranger())
    for api in (control, stranger):
        r = api.post(f"community/polls/{news.pk}/comments", {"body": "Nice"})
        assert (r.status_code, r.json()["code"]) == (403, "not_a_member")
    assert control.get(f"community/polls/{news.pk}").json() == stranger.get(f"community/polls/{news.pk}").json()
    assert anon_api.get(f"community/polls/{news.pk}").status_code == 401
    user, _ = make_member()
    r = api_as(user).post(f"community/polls/{news.pk}/answers", {"option_id": 1})
    assert (r.status_code, r.json()["code"]) == (409, "not_a_poll")
    assert Comment.objects.count() == 0


def test_hidden_poll_leaves_the_list(manager_api):
    poll = _poll()
    user, _ = make_member()
    api = api_as(user)
    assert api.get("community/polls").json()["count"] == 1
    assert manager_api.post(f"community/polls/{poll.pk}/hide", {"reason": "Wrong date"}).status_code == 200
    assert api.get("community/polls").json() == {"items": [], "count": 0}
    assert api.get(f"community/polls/{poll.pk}").status_code == 404
    assert api.post(f"community/polls/{poll.pk}/hide", {"reason": "x"}).status_code == 403
