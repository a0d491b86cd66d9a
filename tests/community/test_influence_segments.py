"""The influence metric in a segment rule selects exactly the expected customers."""

from datetime import timedelta

import pytest

from community.services.influence import influence_refresh
from community.services.referrals import referral_attribute
from loyalty.segmentation.models import RunStatus
from loyalty.segmentation.selectors import segment_member_list
from loyalty.segmentation.services.segments import (
    segment_create,
    segment_preview,
    segment_run_create,
    segment_run_execute,
)
from tests.community.factories import CampaignFactory, IdeaFactory, ambassador, new_customer
from tests.factories import MembershipFactory, TierFactory
from tests.loyalty.scoring.factories import ScoringRunFactory, metrics_for

pytestmark = pytest.mark.django_db


def test_engaged_members_with_influence_at_least_n():
    tier = TierFactory()
    campaign = CampaignFactory(programme=tier.programme)
    at = campaign.starts_at + timedelta(days=10)
    a, b, c, d = (MembershipFactory(programme=tier.programme, tier=tier) for _ in range(4))
    ambassador(campaign, a, code="AAAA1111")
    ambassador(campaign, b, code="BBBB1111")
    # a: two converted referrals (2.0); b: one (1.0) plus 3 votes (0.3) = 1.3; c: 12 votes = 1.2; d: nothing.
    for code in ("AAAA1111", "AAAA1111", "BBBB1111"):
        referred = new_customer(campaign)
        referral_attribute(customer_id=referred.pk, code=code, source="signup", at=at)
        referred.revenue_entries.create(period=at.date(), amount=10, external_id=f"r-{referred.pk}")
    IdeaFactory(author=b.customer, vote_count=3)
    IdeaFactory(author=c.customer, vote_count=12)
    influence_refresh()

    run = ScoringRunFactory()
    engaged = {a: 70.0, b: 80.0, c: 75.0, d: 90.0}
    for membership, score in engaged.items():
        metrics_for(run, membership.customer, engagement_score=score)
    lazy = new_customer(campaign)
    metrics_for(run, lazy, engagement_score=10.0)
    rule = {
        "all": [
            {"field": "engagement_score", "op": "gte", "value": 60},
            {"field": "influence", "op": "gte", "value": 1.2},
        ]
    }
    segment = segment_create(name="influencers", rule=rule, top_n=10, top_by="influence")
    segment_run = segment_run_execute(run_id=segment_run_create(segment=segment, scoring_run=run, enqueue=False).pk)
    assert segment_run.status == RunStatus.SUCCEEDED, segment_run.error
    members = list(segment_member_list(run=segment_run).values_list("customer_id", "values"))
    assert [cid for cid, _ in members] == [a.customer_id, b.customer_id, c.customer_id]
    assert [round(v["influence"], 6) for _, v in members] == [2.0, 1.3, 1.2]
    preview = segment_preview(
        rule={"field": "influence", "op": "lt", "value": 1.2}, top_n=None, top_by="", tie_break="", scoring_run=run
    )
    assert preview["candidates_count"] == 2  # d and the lazy customer, who have no influence row (0)
