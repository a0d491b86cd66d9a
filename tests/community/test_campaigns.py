"""Ambassador campaigns: nomination from a segment run with a cap, only active treatment members, the
reproducible holdout of nominees, and manager-only access."""

from datetime import UTC, datetime

import pytest

from community.models import Campaign, Nominee
from loyalty.programmes.services.assignment import assignment_bucket_int, holdout_cutoff
from tests.community.factories import CampaignFactory, make_member
from tests.conftest import api_as
from tests.factories import CustomerFactory, MembershipFactory, TierFactory
from tests.loyalty.programmes.factories import SegmentMemberFactory, SegmentRunFactory

pytestmark = pytest.mark.django_db


def test_nominate_capped_active_treatment_members_with_reproducible_holdout(manager_api):
    tier = TierFactory()
    programme = tier.programme
    created = manager_api.post(
        "community/campaigns",
        {
            "programme_id": programme.pk,
            "name": "Phone X launch",
            "starts_at": "2026-01-01T00:00:00Z",
            "ends_at": "2036-01-01T00:00:00Z",
            "holdout_percent": "30",
            "max_ambassadors": 25,
        },
    )
    assert created.status_code == 201, created.content
    campaign = Campaign.objects.get(pk=created.json()["id"])
    run = SegmentRunFactory()
    members = [MembershipFactory(programme=programme, tier=tier) for _ in range(30)]
    control = MembershipFactory(programme=programme, control=True)
    ended = MembershipFactory(programme=programme, tier=tier, status="ended")
    churned = MembershipFactory(
        programme=programme,
        tier=tier,
        customer__status="churned",
        customer__churned_at=datetime(2026, 2, 1, tzinfo=UTC),
    )
    outsider = CustomerFactory()
    ranked = [control.customer, ended.customer, churned.customer, outsider] + [m.customer for m in members]
    for rank, customer in enumerate(ranked, start=1):
        SegmentMemberFactory(run=run, customer=customer, rank=rank)

    first = manager_api.post(f"community/campaigns/{campaign.pk}/nominations", {"segment_run_id": run.pk, "cap": 10})
    assert first.status_code == 200, first.content
    assert (first.json()["nominated"], first.json()["room_left"]) == (10, 15)
    second = manager_api.post(f"community/campaigns/{campaign.pk}/nominations", {"segment_run_id": run.pk})
    assert (second.json()["nominated"], second.json()["room_left"]) == (15, 0)
    third = manager_api.post(f"community/campaigns/{campaign.pk}/nominations", {"segment_run_id": run.pk})
    assert third.json()["nominated"] == 0

    nominees = list(Nominee.objects.filter(campaign=campaign).order_by("rank"))
    assert [n.customer_id for n in nominees] == [m.customer_id for m in members[:25]]
    cutoff = holdout_cutoff(30)
    seed = f"{programme.seed}:campaign:{campaign.pk}"
    for n in nominees:
        bucket = assignment_bucket_int(seed, n.customer_id)
        assert (n.assignment_bucket, n.group) == (bucket, "held_out" if bucket < cutoff else "ambassador")
    assert first.json()["held_out"] + second.json()["held_out"] == sum(n.group == "held_out" for n in nominees)

    listed = manager_api.get(f"community/campaigns/{campaign.pk}/nominees?group=held_out&limit=500").json()
    assert listed["count"] == sum(n.group == "held_out" for n in nominees)


def test_campaign_operations_are_for_managers_only(agent_api, anon_api):
    campaign = CampaignFactory()
    run = SegmentRunFactory()
    user, _ = make_member()
    for api in (api_as(user), agent_api):
        assert api.get("community/campaigns").status_code == 403
        assert api.get(f"community/campaigns/{campaign.pk}/report").status_code == 403
        assert api.post(f"community/campaigns/{campaign.pk}/nominations", {"segment_run_id": run.pk}).status_code == 403
        assert api.post("community/influence/refresh").status_code == 403
        response = api.post(
            "community/campaigns",
            {
                "programme_id": campaign.programme_id,
                "name": "x",
                "starts_at": "2026-01-01T00:00:00Z",
                "ends_at": "2026-02-01T00:00:00Z",
                "max_ambassadors": 1,
            },
        )
        assert (response.status_code, response.json()["code"]) == (403, "role_required")
    assert anon_api.get("community/campaigns").status_code == 401
    assert (Campaign.objects.count(), Nominee.objects.count()) == (1, 0)


def test_campaign_validation(manager_api):
    tier = TierFactory()
    bad = manager_api.post(
        "community/campaigns",
        {
            "programme_id": tier.programme_id,
            "name": "x",
            "starts_at": "2026-02-01T00:00:00Z",
            "ends_at": "2026-01-01T00:00:00Z",
            "max_ambassadors": 1,
        },
    )
    assert (bad.status_code, bad.json()["fields"]) == (422, {"ends_at": ["Must be after starts_at."]})
    missing = manager_api.post(
        "community/campaigns",
        {
            "programme_id": 999999,
            "name": "x",
            "starts_at": "2026-01-01T00:00:00Z",
            "ends_at": "2026-02-01T00:00:00Z",
            "max_ambassadors": 1,
        },
    )
    assert (missing.status_code, missing.json()["code"]) == (404, "programme_not_found")
    assert Campaign.objects.count() == 0
