"""Community invariants under real concurrency, on PostgreSQL (skipped on SQLite, where writes are serialized)."""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection

from community.models import Idea, IdeaStatus, Referral, Round, Vote
from community.services.ideas import idea_fund, vote_cast
from community.services.referrals import referral_attribute
from core.errors import PremierError
from tests.community.factories import CampaignFactory, IdeaFactory, RoundFactory, ambassador, make_member, new_customer
from tests.factories import MembershipFactory, TierFactory, UserFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _run_concurrently(func, args_list):
    """Every call in its own thread, released together; answers the result or the error code of each."""
    barrier = threading.Barrier(len(args_list))
    results: list = []
    lock = threading.Lock()

    def worker(args):
        try:
            barrier.wait()
            try:
                outcome = func(*args)
            except PremierError as exc:
                outcome = exc.code
            with lock:
                results.append(outcome)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=len(args_list)) as pool:
        list(pool.map(worker, args_list))
    return results


def test_50_concurrent_votes_by_one_member_leave_one_vote():
    user, membership = make_member()
    idea = IdeaFactory(round=RoundFactory())

    results = _run_concurrently(lambda: vote_cast(user=user, idea_id=idea.pk).vote_count, [()] * 50)
    assert sorted(results, key=str) == [1] + ["already_voted"] * 49
    assert Vote.objects.filter(idea=idea, customer=membership.customer).count() == 1
    idea.refresh_from_db()
    assert idea.vote_count == 1


def test_20_concurrent_funding_decisions_never_exceed_the_budget():
    round_ = RoundFactory(budget=Decimal("1000.00"))
    ideas = [IdeaFactory(round=round_, status=IdeaStatus.SHORTLISTED) for _ in range(20)]
    manager = UserFactory(roles=["programme_manager"])
    # 20 × 150 = 3000 asked of a 1000 budget: exactly 6 fit (900), then 100 remains.
    results = _run_concurrently(
        lambda idea: idea_fund(idea_id=idea.pk, actor=manager, amount=Decimal("150.00")).status,
        [(idea,) for idea in ideas],
    )
    assert sorted(results) == ["budget_exceeded"] * 14 + ["funded"] * 6
    round_.refresh_from_db()
    assert round_.funded_total == Decimal("900.00")
    assert Idea.objects.filter(round=round_, status=IdeaStatus.FUNDED).count() == 6
    assert sum(
        Idea.objects.filter(round=round_).exclude(funded_amount=None).values_list("funded_amount", flat=True)
    ) == (Decimal("900.00"))
    assert Round.objects.get(pk=round_.pk).funded_total <= round_.budget


def test_two_concurrent_attributions_of_one_customer_leave_one():
    tier = TierFactory()
    campaign = CampaignFactory(programme=tier.programme)
    ambassador(campaign, MembershipFactory(programme=tier.programme, tier=tier), code="AAAA1111")
    ambassador(campaign, MembershipFactory(programme=tier.programme, tier=tier), code="BBBB1111")
    at = campaign.starts_at + timedelta(days=3)
    for _ in range(5):  # repeat: the race goes either way
        customer = new_customer(campaign)
        results = _run_concurrently(
            lambda code, c=customer: referral_attribute(customer_id=c.pk, code=code, source="signup", at=at).code.code,
            [("AAAA1111",), ("BBBB1111",)],
        )
        winners = [r for r in results if r != "already_attributed"]
        assert len(results) == 2
        assert len(winners) == 1
        assert winners[0] in ("AAAA1111", "BBBB1111")
        referral = Referral.objects.get(referred=customer)
        assert referral.code.code == winners[0]
