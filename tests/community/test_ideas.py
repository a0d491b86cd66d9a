"""The idea space through the API: posting, opening, voting (and withdrawing), comments, moderation, status
changes with author emails, funding within the budget, limits, and every role including denied calls."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from community.models import Comment, Idea, IdeaStatus, IdeaStatusChange, Round, Vote
from community.services.common import IDEAS_PER_DAY
from loyalty.customers.models import Interaction
from tests.community.factories import IdeaFactory, RoundFactory, make_control, make_member, make_stranger
from tests.conftest import api_as
from tests.factories import CustomerFactory, UserFactory

pytestmark = pytest.mark.django_db


def _post(api, round_id, headers=None, **body):
    data = {"title": "Lounge at the airport", "body": "A quiet lounge for members.", "category": "service", **body}
    return api.post(f"community/rounds/{round_id}/ideas", data, headers=headers)


def test_member_posts_manager_opens_members_vote_and_withdraw(manager_api, django_capture_on_commit_callbacks):
    round_ = RoundFactory()
    author, author_m = make_member(name="Ada Lovelace")
    voter, voter_m = make_member(name="Grace Brewster Hopper")
    author_api, voter_api = api_as(author), api_as(voter)

    response = _post(author_api, round_.pk)
    assert response.status_code == 201, response.content
    idea = response.json()
    assert (idea["status"], idea["vote_count"], idea["author"], idea["voted_by_me"]) == (
        "submitted",
        0,
        "Ada L.",
        False,
    )
    assert (
        Interaction.objects.filter(
            customer=author_m.customer, channel="social", kind="idea_posted", external_id=f"community-idea-{idea['id']}"
        ).count()
        == 1
    )

    # Submitted ideas are not listed, and are a 404 to others until a manager opens them.
    assert voter_api.get(f"community/rounds/{round_.pk}/ideas").json() == {"items": [], "count": 0}
    assert voter_api.get(f"community/ideas/{idea['id']}").status_code == 404
    assert author_api.get(f"community/ideas/{idea['id']}").status_code == 200
    assert voter_api.post(f"community/ideas/{idea['id']}/vote").json()["code"] == "idea_not_found"

    with django_capture_on_commit_callbacks(execute=True):
        opened = manager_api.post(f"community/ideas/{idea['id']}/status", {"to": "open", "note": "Welcome"})
    assert opened.status_code == 200, opened.content
    assert opened.json()["status"] == "open"
    assert [m.to for m in mail.outbox] == [[author.email]]
    assert mail.outbox[0].subject == "Your idea 'Lounge at the airport' is open"

    voted = voter_api.post(f"community/ideas/{idea['id']}/vote")
    assert voted.status_code == 200, voted.content
    assert (voted.json()["vote_count"], voted.json()["voted_by_me"]) == (1, True)
    again = voter_api.post(f"community/ideas/{idea['id']}/vote")
    assert (again.status_code, again.json()["code"]) == (409, "already_voted")
    own = author_api.post(f"community/ideas/{idea['id']}/vote")
    assert (own.status_code, own.json()["code"]) == (400, "own_idea")
    assert Interaction.objects.filter(customer=voter_m.customer, channel="social", kind="idea_voted").count() == 1

    listed = voter_api.get(f"community/rounds/{round_.pk}/ideas").json()
    assert listed["count"] == 1
    assert listed["items"][0]["vote_count"] == 1
    assert listed["items"][0]["author"] == "Ada L."

    withdrawn = voter_api.delete(f"community/ideas/{idea['id']}/vote")
    assert (withdrawn.status_code, withdrawn.json()["vote_count"], withdrawn.json()["voted_by_me"]) == (200, 0, False)
    twice = voter_api.delete(f"community/ideas/{idea['id']}/vote")
    assert (twice.status_code, twice.json()["code"]) == (404, "vote_not_found")
    assert Vote.objects.count() == 0


def test_idea_list_sorted_by_votes_in_constant_queries():
    round_ = RoundFactory()
    user, _ = make_member()
    counts = [3, 9, 1, 9, 0]
    ideas = [IdeaFactory(round=round_, vote_count=n) for n in counts]
    IdeaFactory(round=round_, vote_count=50, hidden=True, hidden_reason="spam")
    IdeaFactory(round=round_, vote_count=60, status=IdeaStatus.SUBMITTED)
    api = api_as(user)
    with CaptureQueriesContext(connection) as ctx:
        response = api.get(f"community/rounds/{round_.pk}/ideas")
    body = response.json()
    assert [i["id"] for i in body["items"]] == [ideas[3].pk, ideas[1].pk, ideas[0].pk, ideas[2].pk, ideas[4].pk]
    with CaptureQueriesContext(connection) as ctx2:
        api.get(f"community/rounds/{round_.pk}/ideas?limit=2&offset=4")
    assert len(ctx.captured_queries) == len(ctx2.captured_queries)
    with CaptureQueriesContext(connection) as ctx3:
        api.get(f"community/rounds/{round_.pk}/ideas?limit=2")
    assert len(ctx3.captured_queries) == len(ctx.captured_queries) + 1  # a full page needs the COUNT


def test_votes_only_while_open_and_on_votable_ideas():
    user, _ = make_member()
    api = api_as(user)
    closed_round = RoundFactory(
        starts_at=timezone.now() - timedelta(days=10), ends_at=timezone.now() - timedelta(days=1)
    )
    closed_idea = IdeaFactory(round=closed_round)
    response = api.post(f"community/ideas/{closed_idea.pk}/vote")
    assert (response.status_code, response.json()["code"]) == (409, "round_closed")
    declined = IdeaFactory(status=IdeaStatus.DECLINED)
    response = api.post(f"community/ideas/{declined.pk}/vote")
    assert (response.status_code, response.json()["code"]) == (409, "idea_not_votable")
    assert Vote.objects.count() == 0


def test_denied_callers_change_nothing_and_control_answers_like_strangers(anon_api, agent_api):
    round_ = RoundFactory()
    idea = IdeaFactory(round=round_)
    control_user, _ = make_control()
    stranger = make_stranger()
    control_api, stranger_api = api_as(control_user), api_as(stranger)
    calls = [
        ("post", f"community/rounds/{round_.pk}/ideas", {"title": "t", "body": "b", "category": "other"}),
        ("post", f"community/ideas/{idea.pk}/vote", None),
        ("delete", f"community/ideas/{idea.pk}/vote", None),
        ("post", f"community/ideas/{idea.pk}/comments", {"body": "hi"}),
    ]
    for method, path, data in calls:
        control = getattr(control_api, method)(path, data)
        other = getattr(stranger_api, method)(path, data)
        agent = getattr(agent_api, method)(path, data)
        assert control.status_code == other.status_code == agent.status_code == 403, path
        assert (
            control.json()
            == other.json()
            == agent.json()
            == {
                "detail": "You have no active programme membership.",
                "code": "not_a_member",
                "fields": {},
            }
        )
        assert getattr(anon_api, method)(path, data).status_code == 401
    # Reads: control and stranger see the same thing.
    assert (
        control_api.get(f"community/rounds/{round_.pk}/ideas").json()
        == stranger_api.get(f"community/rounds/{round_.pk}/ideas").json()
    )
    assert anon_api.get(f"community/rounds/{round_.pk}/ideas").status_code == 401
    # Manager operations refuse members, agents and partner staff.
    member_user, _ = make_member()
    for api in (api_as(member_user), agent_api, api_as(UserFactory(roles=["partner_staff"]))):
        assert api.post(f"community/ideas/{idea.pk}/status", {"to": "shortlisted"}).status_code == 403
        assert api.post(f"community/ideas/{idea.pk}/fund", {"amount": "10"}).status_code == 403
        assert api.post(f"community/ideas/{idea.pk}/hide", {"reason": "x"}).status_code == 403
        assert (
            api.post(
                "community/rounds",
                {"title": "r", "starts_at": "2026-01-01T00:00:00Z", "ends_at": "2026-02-01T00:00:00Z", "budget": "5"},
            ).status_code
            == 403
        )
        assert api.get(f"community/manage/rounds/{round_.pk}/ideas").status_code == 403
    assert (Idea.objects.count(), Vote.objects.count(), Comment.objects.count(), Round.objects.count()) == (1, 0, 0, 1)
    idea.refresh_from_db()
    assert (idea.status, idea.hidden, idea.funded_amount) == (IdeaStatus.OPEN, False, None)


def test_funding_keeps_within_budget_and_follows_statuses(manager_api):
    round_ = RoundFactory(budget=Decimal("100.00"))
    author = CustomerFactory(name="Ada Lovelace")
    a = IdeaFactory(round=round_, author=author, status=IdeaStatus.SHORTLISTED)
    b = IdeaFactory(round=round_, status=IdeaStatus.SHORTLISTED)
    c = IdeaFactory(round=round_, status=IdeaStatus.OPEN)
    assert manager_api.post(f"community/ideas/{a.pk}/fund", {"amount": "60.00"}).json()["status"] == "funded"
    over = manager_api.post(f"community/ideas/{b.pk}/fund", {"amount": "40.01"})
    assert over.status_code == 409
    assert over.json() == {
        "detail": "The round's budget cannot cover this amount.",
        "code": "budget_exceeded",
        "fields": {"budget": "100.00", "remaining": "40.00"},
    }
    not_short = manager_api.post(f"community/ideas/{c.pk}/fund", {"amount": "1.00"})
    assert (not_short.status_code, not_short.json()["code"]) == (409, "idea_not_shortlisted")
    twice = manager_api.post(f"community/ideas/{a.pk}/fund", {"amount": "1.00"})
    assert twice.json()["code"] == "idea_not_shortlisted"
    assert manager_api.post(f"community/ideas/{b.pk}/fund", {"amount": "40.00"}).status_code == 200
    bad = manager_api.post(f"community/ideas/{c.pk}/fund", {"amount": "0"})
    assert bad.status_code == 422
    round_.refresh_from_db()
    assert round_.funded_total == Decimal("100.00")
    delivered = manager_api.post(f"community/ideas/{a.pk}/status", {"to": "delivered"})
    assert delivered.json()["status"] == "delivered"
    wrong = manager_api.post(f"community/ideas/{a.pk}/status", {"to": "open"})
    assert wrong.status_code == 409
    assert wrong.json()["code"] == "invalid_transition"
    assert wrong.json()["fields"] == {"from": "delivered", "to": "open", "allowed": []}
    assert list(IdeaStatusChange.objects.filter(idea=a).values_list("from_status", "to_status")) == [
        ("shortlisted", "funded"),
        ("funded", "delivered"),
    ]


def test_hidden_ideas_and_comments_leave_every_list(manager_api):
    round_ = RoundFactory()
    user, _ = make_member(name="Alan Mathison Turing")
    api = api_as(user)
    idea = IdeaFactory(round=round_)
    comment = api.post(f"community/ideas/{idea.pk}/comments", {"body": "Great idea"})
    assert comment.status_code == 201, comment.content
    assert comment.json()["author"] == "Alan T."
    assert [c["body"] for c in api.get(f"community/ideas/{idea.pk}").json()["comments"]] == ["Great idea"]
    hidden_c = manager_api.post(f"community/comments/{comment.json()['id']}/hide", {"reason": "Off topic"})
    assert hidden_c.status_code == 200
    assert api.get(f"community/ideas/{idea.pk}").json()["comments"] == []
    no_reason = manager_api.post(f"community/ideas/{idea.pk}/hide", {"reason": "  "})
    assert no_reason.status_code == 422
    hidden = manager_api.post(f"community/ideas/{idea.pk}/hide", {"reason": "Duplicate"})
    assert (hidden.status_code, hidden.json()["hidden"], hidden.json()["hidden_reason"]) == (200, True, "Duplicate")
    assert api.get(f"community/rounds/{round_.pk}/ideas").json()["count"] == 0
    assert api.get(f"community/ideas/{idea.pk}").status_code == 404
    assert api.post(f"community/ideas/{idea.pk}/vote").status_code == 404
    managed = manager_api.get(f"community/manage/rounds/{round_.pk}/ideas?hidden=true").json()
    assert [i["id"] for i in managed["items"]] == [idea.pk]


def test_posting_limit_and_lengths():
    round_ = RoundFactory()
    user, membership = make_member()
    api = api_as(user)
    for n in range(IDEAS_PER_DAY):
        assert _post(api, round_.pk, title=f"Idea {n}").status_code == 201
    limited = _post(api, round_.pk)
    assert limited.status_code == 429
    assert limited.json() == {
        "detail": f"You may post at most {IDEAS_PER_DAY} ideas per 24 hour(s). Try again later.",
        "code": "posting_limit",
        "fields": {"limit": IDEAS_PER_DAY, "window_hours": 24, "kind": "ideas"},
    }
    too_long = _post(api, round_.pk, title="x" * 121, body="")
    assert too_long.status_code == 422
    assert set(too_long.json()["fields"]) == {"title", "body"}
    assert Idea.objects.filter(author=membership.customer).count() == IDEAS_PER_DAY


def test_idempotency_key_posts_an_idea_once():
    round_ = RoundFactory()
    user, membership = make_member()
    api = api_as(user)
    first = _post(api, round_.pk, headers={"Idempotency-Key": "idea-1"})
    again = _post(api, round_.pk, headers={"Idempotency-Key": "idea-1"})
    assert (first.status_code, again.status_code) == (201, 201)
    assert first.json() == again.json()
    other = api.post(
        f"community/rounds/{round_.pk}/ideas",
        {"title": "Another", "body": "b", "category": "other"},
        headers={"Idempotency-Key": "idea-1"},
    )
    assert other.status_code == 409
    assert Idea.objects.filter(author=membership.customer).count() == 1
