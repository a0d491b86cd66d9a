"""The manager's member timeline shows the community: nominations, the customer's attribution, their ideas."""

from datetime import timedelta

import pytest

from community.services.referrals import referral_attribute
from tests.community.factories import CampaignFactory, IdeaFactory, ambassador, code_for, new_customer
from tests.factories import MembershipFactory, TierFactory

pytestmark = pytest.mark.django_db


def test_timeline_shows_nominations_referral_and_ideas(manager_api):
    tier = TierFactory()
    campaign = CampaignFactory(programme=tier.programme, name="Phone X")
    membership = MembershipFactory(programme=tier.programme, tier=tier)
    ambassador(campaign, membership, code="AAAA1111")
    IdeaFactory(author=membership.customer, title="Quiet lounge", vote_count=4)
    referred = new_customer(campaign)
    referral = referral_attribute(
        customer_id=referred.pk, code="AAAA1111", source="signup", at=campaign.starts_at + timedelta(days=2)
    )
    code_for(campaign, referred, "BBBB1111")

    items = manager_api.get(f"retention/customers/{membership.customer_id}/timeline").json()["items"]
    by_kind = {item["kind"]: item for item in items if item["kind"].startswith("community_")}
    assert by_kind["community_nomination"]["summary"] == "Nominated for campaign Phone X (ambassador)"
    assert by_kind["community_idea"]["summary"] == "Idea 'Quiet lounge' (open, 4 votes)"
    referred_items = manager_api.get(f"retention/customers/{referred.pk}/timeline").json()["items"]
    assert [(i["kind"], i["ref"]) for i in referred_items if i["kind"].startswith("community_")] == [
        ("community_referred", f"referral:{referral.pk}")
    ]
