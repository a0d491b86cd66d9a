from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from loyalty.models import Enrolment, Membership, Programme, Tier, TierChange
from tests.conftest import api_as
from tests.factories import CustomerFactory, MembershipFactory, ProgrammeFactory, TierFactory
from tests.loyalty.programmes.factories import segment_run_with

pytestmark = pytest.mark.django_db

TIER = {"first_response_sla_hours": 4, "resolution_sla_hours": 48, "monthly_request_allowance": 5}


def test_manager_creates_a_programme_and_a_valid_ladder(manager_api):
    response = manager_api.post("programmes", {"name": "Premier", "holdout_percent": "5", "grace_period_days": 45})
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["name"], body["holdout_percent"], body["grace_period_days"]) == ("Premier", "5.00", 45)
    assert len(body["seed"]) == 32
    pid = body["id"]
    for rank, name, threshold in ((1, "Silver", 0), (2, "Gold", 50), (3, "Platinum", 90)):
        created = manager_api.post(
            f"programmes/{pid}/tiers", {"rank": rank, "name": name, "threshold": threshold, **TIER}
        )
        assert created.status_code == 201, created.content
    listed = manager_api.get(f"programmes/{pid}/tiers").json()
    assert [(t["rank"], t["name"], t["threshold"]) for t in listed["items"]] == [
        (1, "Silver", 0.0),
        (2, "Gold", 50.0),
        (3, "Platinum", 90.0),
    ]
    duplicate_name = manager_api.post("programmes", {"name": "Premier"})
    assert (duplicate_name.status_code, duplicate_name.json()["code"]) == (409, "programme_name_taken")


@pytest.mark.parametrize(
    "tier,code,field",
    [
        ({"rank": 2, "name": "Again", "threshold": 70}, "tier_rank_taken", "rank"),
        ({"rank": 3, "name": "Low", "threshold": 40}, "invalid_tier", "threshold"),
        ({"rank": 1, "name": "Entry", "threshold": 60}, "invalid_tier", "threshold"),
        ({"rank": 3, "name": "Gold", "threshold": 95}, "invalid_tier", "name"),
        (
            {"rank": 3, "name": "Bad SLA", "threshold": 95, "first_response_sla_hours": 50},
            "invalid_tier",
            "resolution_sla_hours",
        ),
    ],
)
def test_tier_ladder_validation_changes_nothing(manager_api, tier, code, field):
    programme = ProgrammeFactory()
    TierFactory(programme=programme, rank=2, name="Gold", threshold=50)
    response = manager_api.post(f"programmes/{programme.pk}/tiers", {**TIER, **tier})
    assert response.status_code == 422, response.content
    assert response.json()["code"] == code and field in response.json()["fields"]
    assert Tier.objects.filter(programme=programme).count() == 1


def test_patch_tier_revalidates_the_ladder_and_delete_refuses_used_tiers(manager_api):
    programme = ProgrammeFactory()
    silver = TierFactory(programme=programme, rank=1, name="Silver", threshold=0)
    gold = TierFactory(programme=programme, rank=2, name="Gold", threshold=50)
    bad = manager_api.patch(f"programmes/{programme.pk}/tiers/{gold.pk}", {"threshold": -1})
    assert bad.status_code == 422
    ok = manager_api.patch(f"programmes/{programme.pk}/tiers/{gold.pk}", {"threshold": 60, "guests_per_booking": 2})
    assert (ok.status_code, ok.json()["threshold"], ok.json()["guests_per_booking"]) == (200, 60.0, 2)
    MembershipFactory(programme=programme, tier=silver)
    in_use = manager_api.delete(f"programmes/{programme.pk}/tiers/{silver.pk}")
    assert (in_use.status_code, in_use.json()["code"]) == (409, "tier_in_use")
    assert manager_api.delete(f"programmes/{programme.pk}/tiers/{gold.pk}").status_code == 204
    assert list(Tier.objects.filter(programme=programme)) == [silver]
    other = TierFactory()
    assert manager_api.patch(f"programmes/{programme.pk}/tiers/{other.pk}", {"threshold": 1}).status_code == 404


def test_holdout_and_seed_are_frozen_once_enrolled(manager_api):
    programme = ProgrammeFactory(holdout_percent=10)
    MembershipFactory(programme=programme)
    response = manager_api.patch(f"programmes/{programme.pk}", {"holdout_percent": "20", "name": "Renamed"})
    assert (response.status_code, response.json()["code"]) == (409, "programme_has_members")
    programme.refresh_from_db()
    assert (programme.holdout_percent, programme.name) != (20, "Renamed") and programme.holdout_percent == 10
    assert manager_api.patch(f"programmes/{programme.pk}", {"name": "Renamed"}).json()["name"] == "Renamed"


def test_the_primary_question_is_declared_and_frozen_once_enrolled(manager_api):
    created = manager_api.post("programmes", {"name": "Primary", "primary_horizon_months": 6})
    assert (created.status_code, created.json()["primary_metric"], created.json()["primary_horizon_months"]) == (
        201,
        "retention",
        6,
    )
    programme_id = created.json()["id"]
    assert manager_api.patch(f"programmes/{programme_id}", {"primary_horizon_months": 61}).status_code == 422
    assert (
        manager_api.patch(f"programmes/{programme_id}", {"primary_horizon_months": 9}).json()["primary_horizon_months"]
        == 9
    )
    MembershipFactory(programme_id=programme_id)
    frozen = manager_api.patch(f"programmes/{programme_id}", {"primary_horizon_months": 12})
    assert (frozen.status_code, frozen.json()["code"]) == (409, "programme_has_members")
    assert frozen.json()["fields"] == {"primary_horizon_months": ["Frozen once customers are enrolled."]}


def test_enrol_from_a_run_through_the_api(manager_api, django_capture_on_commit_callbacks):
    programme = ProgrammeFactory(holdout_percent=20)
    TierFactory(programme=programme, rank=1, name="Silver", threshold=0)
    TierFactory(programme=programme, rank=2, name="Gold", threshold=50)
    run = segment_run_with([(CustomerFactory(), v) for v in (10, 60, 70, 20, 99)])
    with django_capture_on_commit_callbacks(execute=True):
        created = manager_api.post(f"programmes/{programme.pk}/enrolments", {"segment_run_id": run.pk})
    assert created.status_code == 201, created.content
    enrolment_id = created.json()["id"]
    result = manager_api.get(f"programmes/{programme.pk}/enrolments/{enrolment_id}").json()
    assert (result["status"], result["enrolled_count"]) == ("succeeded", 5)
    totals = result["result"]["totals"]
    assert totals["treatment"] + totals["control"] == 5
    assert [row["tier"] for row in result["result"]["per_tier"]] == ["Silver", "Gold"]
    assert set(result["result"]["power"]["by_holdout_percent"]) == {"5", "10", "15", "20", "30", "50"}
    with django_capture_on_commit_callbacks(execute=True):
        again = manager_api.post(f"programmes/{programme.pk}/enrolments", {"segment_run_id": run.pk})
    assert (again.status_code, again.json()["id"]) == (200, enrolment_id)
    assert Membership.objects.count() == 5 and Enrolment.objects.count() == 1
    missing = manager_api.post(f"programmes/{programme.pk}/enrolments", {"segment_run_id": 10**9})
    assert (missing.status_code, missing.json()["code"]) == (404, "segment_run_not_found")


def test_power_table_for_planning(manager_api):
    programme = ProgrammeFactory(holdout_percent="7.5", expected_retention=0.89)
    rows = manager_api.get(f"programmes/{programme.pk}/power?customers=100000").json()["rows"]
    by_share = {row["holdout_percent"]: row["min_detectable_retention_effect_points"] for row in rows}
    assert by_share[10.0] == 0.92 and by_share[5.0] == 1.27 and 7.5 in by_share


def test_memberships_list_filters_and_query_count(manager_api, django_assert_num_queries):
    programme = ProgrammeFactory()
    silver = TierFactory(programme=programme, rank=1, threshold=0)
    gold = TierFactory(programme=programme, rank=2, threshold=50)
    for tier in (silver, gold, gold):
        MembershipFactory(programme=programme, tier=tier)
    MembershipFactory(programme=programme, control=True, shadow_tier=gold)
    MembershipFactory(programme=ProgrammeFactory())  # another programme: never listed
    url = f"programmes/{programme.pk}/memberships"
    manager_api.get(url)  # warm the token's user lookup caches
    with CaptureQueriesContext(connection) as few:
        assert manager_api.get(url).json()["count"] == 4
    for _ in range(5):
        MembershipFactory(
            programme=programme, tier=silver, override_tier=gold, override_expires_at=datetime(2030, 1, 1, tzinfo=UTC)
        )
    with django_assert_num_queries(len(few.captured_queries)):
        assert manager_api.get(url).json()["count"] == 9
    assert manager_api.get(f"{url}?group=control").json()["items"][0]["shadow_tier"]["id"] == gold.pk
    assert manager_api.get(f"{url}?tier_id={gold.pk}").json()["count"] == 3
    assert manager_api.get(f"{url}?has_override=true").json()["count"] == 5
    assert manager_api.get(f"{url}?status=holdout").json()["count"] == 1


def test_overrides_and_tier_change_history_through_the_api(manager_api, manager, django_assert_num_queries):
    programme = ProgrammeFactory()
    silver = TierFactory(programme=programme, rank=1, threshold=0)
    gold = TierFactory(programme=programme, rank=2, threshold=50)
    member = MembershipFactory(programme=programme, tier=silver)
    expires = (datetime.now(UTC) + timedelta(days=7)).isoformat()
    url = f"programmes/{programme.pk}/memberships/{member.pk}/override"
    response = manager_api.put(url, {"tier_id": gold.pk, "expires_at": expires, "reason": "goodwill"})
    assert response.status_code == 200, response.content
    assert (response.json()["override_tier"]["id"], response.json()["override_reason"]) == (gold.pk, "goodwill")
    past = manager_api.put(url, {"tier_id": gold.pk, "expires_at": "2020-01-01T00:00:00Z", "reason": "x"})
    assert (past.status_code, past.json()["code"]) == (422, "invalid_override")
    assert manager_api.delete(url).json()["override_tier"] is None
    history = manager_api.get(f"programmes/{programme.pk}/tier-changes?membership_id={member.pk}").json()
    assert [(c["reason"], c["from_tier"]["id"], c["to_tier"]["id"]) for c in history["items"]] == [
        ("override_expired", gold.pk, silver.pk),
        ("override", silver.pk, gold.pk),
    ]
    assert history["items"][1]["actor_id"] == manager.pk
    url = f"programmes/{programme.pk}/tier-changes"
    with CaptureQueriesContext(connection) as few:
        assert manager_api.get(url).json()["count"] == 2
    for _ in range(4):
        other = MembershipFactory(programme=programme, tier=silver)
        TierChange.objects.create(membership=other, to_tier=silver, reason="enrolment", at=datetime.now(UTC))
    with django_assert_num_queries(len(few.captured_queries)):
        assert manager_api.get(url).json()["count"] == 6


def _denied_calls(programme, tier, member, run):
    pid = programme.pk
    return [
        ("get", "programmes", None),
        ("post", "programmes", {"name": "Sneaky"}),
        ("get", f"programmes/{pid}", None),
        ("patch", f"programmes/{pid}", {"name": "Hijacked", "holdout_percent": "50"}),
        ("get", f"programmes/{pid}/tiers", None),
        ("post", f"programmes/{pid}/tiers", {"rank": 9, "name": "X", "threshold": 99, **TIER}),
        ("patch", f"programmes/{pid}/tiers/{tier.pk}", {"threshold": 1}),
        ("delete", f"programmes/{pid}/tiers/{tier.pk}", None),
        ("post", f"programmes/{pid}/enrolments", {"segment_run_id": run.pk}),
        ("get", f"programmes/{pid}/enrolments", None),
        ("post", f"programmes/{pid}/evaluate", None),
        ("get", f"programmes/{pid}/memberships", None),
        ("get", f"programmes/{pid}/memberships/{member.pk}", None),
        ("get", f"programmes/{pid}/tier-changes", None),
        (
            "put",
            f"programmes/{pid}/memberships/{member.pk}/override",
            {"tier_id": tier.pk, "expires_at": "2030-01-01T00:00:00Z", "reason": "x"},
        ),
        ("delete", f"programmes/{pid}/memberships/{member.pk}/override", None),
        ("get", f"programmes/{pid}/power", None),
    ]


def _snapshot():
    return (
        list(Programme.objects.values()),
        list(Tier.objects.values()),
        list(Membership.objects.values()),
        list(TierChange.objects.values()),
        list(Enrolment.objects.values()),
    )


@pytest.mark.parametrize("role", ["concierge_agent", "partner_staff", "member", None])
def test_agents_partners_and_members_cannot_use_manager_endpoints(role, django_capture_on_commit_callbacks):
    from tests.factories import UserFactory

    programme = ProgrammeFactory(name="Original")
    tier = TierFactory(programme=programme, rank=1, threshold=0)
    member = MembershipFactory(
        programme=programme, tier=tier, override_tier=tier, override_expires_at=datetime(2030, 1, 1, tzinfo=UTC)
    )
    run = segment_run_with([(CustomerFactory(), 50)])
    client = api_as(UserFactory(roles=[role] if role else []))
    before = _snapshot()
    for method, path, data in _denied_calls(programme, tier, member, run):
        with django_capture_on_commit_callbacks(execute=True):
            response = getattr(client, method)(path, data)
        assert (method, path, response.status_code, response.json()["code"]) == (method, path, 403, "role_required")
    assert _snapshot() == before


def test_anonymous_gets_401(anon_api):
    programme = ProgrammeFactory()
    assert anon_api.get(f"programmes/{programme.pk}").status_code == 401
    assert anon_api.get("me/membership").status_code == 401


def test_nul_characters_are_refused_with_422(manager_api):
    response = manager_api.post("programmes", {"name": "Bad\x00name"})
    assert (response.status_code, list(response.json()["fields"])) == (422, ["name"])
    assert Programme.objects.count() == 0
