"""Referral codes and attribution: the rules, chains and their depth, K on a hand-computed example, the
campaign report, the ingestion hand-over and the sign-up claim, and who learns of a campaign."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from community.models import Nominee, Referral, ReferralCode
from community.selectors import campaign_report, viral_coefficients
from community.services.influence import influence_refresh
from community.services.referrals import referral_attribute
from core.errors import BusinessRuleError, Conflict
from loyalty.customers.models import Customer, Interaction, RevenueEntry
from loyalty.programmes.models import Membership
from loyalty.segmentation.models import CustomerInfluence
from tests.community.factories import (
    CampaignFactory,
    IdeaFactory,
    ambassador,
    code_for,
    link,
    make_control,
    make_member,
    make_stranger,
    new_customer,
)
from tests.conftest import api_as
from tests.factories import CustomerFactory, MembershipFactory, TierFactory

pytestmark = pytest.mark.django_db

AT = datetime(2026, 3, 1, 12, tzinfo=UTC)


def _attr(customer, code, at=AT):
    return referral_attribute(customer_id=customer.pk, code=code, source="signup", at=at)


def _refused(customer, code, at=AT) -> str:
    with pytest.raises((BusinessRuleError, Conflict)) as exc:
        _attr(customer, code, at)
    return exc.value.code


def _revenue(customer, day: date, amount: str = "50.00"):
    RevenueEntry.objects.create(
        customer=customer, period=day, amount=Decimal(amount), external_id=f"rev-{customer.pk}-{day}-{amount}"
    )


@pytest.fixture
def campaign(db):
    tier = TierFactory()
    campaign = CampaignFactory(programme=tier.programme)
    a = MembershipFactory(programme=tier.programme, tier=tier, customer__name="Ada Lovelace")
    ambassador(campaign, a, code="AAAA1111")
    return campaign, a


def test_attribution_rules(campaign):
    campaign, a = campaign
    x = new_customer(campaign)
    assert _refused(x, "NOPE0000") == "unknown_code"
    assert _refused(x, "AAAA1111", at=campaign.starts_at - timedelta(seconds=1)) == "outside_window"
    assert _refused(x, "AAAA1111", at=campaign.ends_at) == "outside_window"
    old = CustomerFactory(joined_at=campaign.starts_at - timedelta(days=1))
    assert _refused(old, "AAAA1111") == "not_a_new_customer"

    # First valid code wins; the code is case-insensitive.
    referral = _attr(x, "aaaa1111")
    assert (referral.referrer_id, referral.generation, referral.root_id) == (a.customer_id, 1, a.customer_id)
    f = MembershipFactory(programme=campaign.programme, tier=a.tier)
    ambassador(campaign, f, code="FFFF2222")
    assert _refused(x, "FFFF2222") == "already_attributed"
    assert _refused(x, "AAAA1111") == "already_attributed"
    assert Referral.objects.get(referred=x).referrer_id == a.customer_id

    # No self-referral: x holds a code now (chains) and cannot use it on themselves.
    code_for(campaign, x, "XXXX3333")
    assert _refused(x, "XXXX3333") == "self_referral"

    # A churned referrer or one whose membership ended: their code is dead.
    Customer.objects.filter(pk=f.customer_id).update(status="churned", churned_at=AT)
    y = new_customer(campaign)
    assert _refused(y, "FFFF2222") == "referrer_inactive"
    Membership.objects.filter(pk=a.pk).update(status="ended", ended_at=AT)
    assert _refused(y, "AAAA1111") == "referrer_inactive"
    # ... but x (referred, active) still refers.
    assert _attr(y, "XXXX3333").generation == 2
    assert Referral.objects.count() == 2


def _chain(campaign, a):
    """A refers B and E; B refers C; C refers D. F refers G, H and I. Converted: B, C, G, H."""
    f = MembershipFactory(programme=campaign.programme, tier=a.tier, customer__name="Fay Wray")
    ambassador(campaign, f, code="FFFF2222")
    held = MembershipFactory(programme=campaign.programme, tier=a.tier)
    ambassador(campaign, held, group=Nominee.Group.HELD_OUT)
    people = {k: new_customer(campaign, name=f"{k} Person") for k in "BCDEGHI"}
    _attr(people["B"], "AAAA1111")
    _attr(people["E"], "AAAA1111")
    code_for(campaign, people["B"], "BBBB2222")
    _attr(people["C"], "BBBB2222", AT + timedelta(days=1))
    code_for(campaign, people["C"], "CCCC2222")
    _attr(people["D"], "CCCC2222", AT + timedelta(days=2))
    for k in "GHI":
        _attr(people[k], "FFFF2222")
    for k in "BCGH":
        _revenue(people[k], date(2026, 3, 10))
    _revenue(people["E"], date(2026, 2, 1))  # before its attribution: no conversion
    _revenue(a.customer, date(2026, 4, 1), "100.00")
    _revenue(held.customer, date(2026, 4, 1), "30.00")
    return f, held, people


def test_chain_depth_k_report_and_influence(campaign):
    campaign, a = campaign
    f, held, p = _chain(campaign, a)
    by = {r.referred_id: r for r in Referral.objects.all()}
    assert [(by[p[k].pk].generation, by[p[k].pk].root_id) for k in "BCD"] == [
        (1, a.customer_id),
        (2, a.customer_id),
        (3, a.customer_id),
    ]
    IdeaFactory(author=a.customer, vote_count=5)
    IdeaFactory(author=a.customer, vote_count=7, hidden=True, hidden_reason="spam")  # hidden: not counted

    assert influence_refresh(now=AT + timedelta(days=20)) == {"conversions_marked": 4, "customers": 3}
    assert sorted(Referral.objects.filter(converted_at__isnull=False).values_list("referred_id", flat=True)) == sorted(
        p[k].pk for k in "BCGH"
    )
    # Each referrer hears of a conversion as a social interaction.
    assert Interaction.objects.filter(customer=a.customer, channel="social", kind="referral_converted").count() == 1
    # Influence: A = B (1) + C two steps down (0.5) + 5 votes × 0.1; B = C (1); F = G + H.
    assert {
        row.customer_id: (row.score, row.referral_credit, row.votes_received) for row in CustomerInfluence.objects.all()
    } == {a.customer_id: (2.0, 1.5, 5), p["B"].pk: (1.0, 1.0, 0), f.customer_id: (2.0, 2.0, 0)}
    assert influence_refresh(now=AT + timedelta(days=21))["conversions_marked"] == 0  # safe to run twice

    report = campaign_report(campaign_id=campaign.pk)
    assert report["depth_distribution"] == [
        {"generation": 1, "referrals": 5, "converted": 3},
        {"generation": 2, "referrals": 1, "converted": 1},
        {"generation": 3, "referrals": 1, "converted": 0},
    ]
    # K per generation = converted ÷ distinct referrers: gen 1: 3 ÷ {A, F}; gen 2: 1 ÷ {B}; gen 3: 0 ÷ {C}.
    assert report["k_per_generation"] == [
        {"generation": 1, "referrers": 2, "converted": 3, "k": 1.5},
        {"generation": 2, "referrers": 1, "converted": 1, "k": 1.0},
        {"generation": 3, "referrers": 1, "converted": 0, "k": 0.0},
    ]
    assert report["k"] == 1.0  # 4 converted ÷ 4 (generation, referrer) pairs
    assert (report["referrals"], report["conversions"], report["referred_revenue"]) == (7, 4, "200.00")
    assert [
        (r["customer_id"], r["direct_referrals"], r["chain_referrals"], r["chain_conversions"], r["max_depth"])
        for r in report["per_ambassador"]
    ] == [(a.customer_id, 2, 4, 2, 3), (f.customer_id, 3, 3, 2, 1)]
    assert report["per_ambassador"][0]["name"] == "Ada L."
    assert report["per_ambassador"][0]["chain_revenue"] == "100.00"
    # Uplift: ambassadors A (100 own + 100 chain) and F (100 chain) against the held out (30).
    uplift = report["uplift"]
    assert (uplift["ambassadors"], uplift["held_out"], uplift["ambassador_mean"], uplift["held_out_mean"]) == (
        2,
        1,
        150.0,
        30.0,
    )
    assert uplift["difference"] == 120.0
    # One held-out nominee: no variance there; ambassadors' sd = 70.71 → se = 50, ± 1.96 × 50.
    assert (uplift["ci_low"], uplift["ci_high"]) == (22.0, 218.0)


def test_viral_coefficient_by_hand():
    per_gen, k = viral_coefficients([(1, 4, 6), (2, 3, 1), (3, 2, 0)])
    assert per_gen == [
        {"generation": 1, "referrers": 4, "converted": 6, "k": 1.5},
        {"generation": 2, "referrers": 3, "converted": 1, "k": 0.3333},
        {"generation": 3, "referrers": 2, "converted": 0, "k": 0.0},
    ]
    assert k == round(7 / 9, 4)
    assert viral_coefficients([]) == ([], None)


def test_codes_and_my_community_for_every_role(manager_api, agent_api, anon_api):
    tier = TierFactory()
    now = timezone.now()
    campaign = CampaignFactory(
        programme=tier.programme, starts_at=now - timedelta(days=5), ends_at=now + timedelta(days=5)
    )
    amb_user, amb = make_member(name="Ada Lovelace", tier=tier)
    nominee = ambassador(campaign, amb)
    held_user, held = make_member(tier=tier)
    ambassador(campaign, held, group=Nominee.Group.HELD_OUT)
    member_user, _ = make_member(tier=tier)
    control_user, _ = make_control(programme=tier.programme)
    stranger = make_stranger()

    got = api_as(amb_user).post(f"community/campaigns/{campaign.pk}/code")
    assert got.status_code == 200, got.content
    code = got.json()["code"]
    assert len(code) == 8
    assert api_as(amb_user).post(f"community/campaigns/{campaign.pk}/code").json()["code"] == code
    manager_api.post(f"community/nominees/{nominee.pk}/received", {"received": "Phone X to try"})
    me = api_as(amb_user).get("me/community").json()
    assert me["ambassador"] is True
    assert [(c["campaign_id"], c["role"], c["received"], c["referral_code"], c["active"]) for c in me["campaigns"]] == [
        (campaign.pk, "ambassador", "Phone X to try", code, True)
    ]

    nothing = {"ambassador": False, "campaigns": []}
    not_found = {"detail": "Campaign not found.", "code": "campaign_not_found", "fields": {}}
    for user in (held_user, member_user, control_user, stranger):
        api = api_as(user)
        assert api.get("me/community").json() == nothing
        response = api.post(f"community/campaigns/{campaign.pk}/code")
        assert (response.status_code, response.json()) == (404, not_found)
    assert agent_api.post(f"community/campaigns/{campaign.pk}/code").json() == not_found
    assert anon_api.get("me/community").status_code == 401
    assert ReferralCode.objects.count() == 1

    # Open to members: an ordinary member gets a code; the control customer still learns nothing.
    campaign.open_to_members = True
    campaign.save()
    assert api_as(member_user).post(f"community/campaigns/{campaign.pk}/code").status_code == 200
    assert [c["role"] for c in api_as(member_user).get("me/community").json()["campaigns"]] == ["member"]
    assert api_as(control_user).get("me/community").json() == nothing
    assert api_as(control_user).post(f"community/campaigns/{campaign.pk}/code").json() == not_found

    # Held-out nominees receive nothing.
    held_nominee = Nominee.objects.get(customer=held.customer)
    refused = manager_api.post(f"community/nominees/{held_nominee.pk}/received", {"received": "Phone"})
    assert (refused.status_code, refused.json()["code"]) == (409, "held_out_nominee")
    assert api_as(amb_user).post(f"community/nominees/{nominee.pk}/received", {"received": "x"}).status_code == 403

    # Sign-up claim: a new customer enters the code.
    newcomer = link(CustomerFactory(joined_at=now - timedelta(days=1)))
    claimed = api_as(newcomer).post("community/referrals/claim", {"code": code})
    assert claimed.status_code == 201, claimed.content
    assert (claimed.json()["campaign_id"], claimed.json()["generation"]) == (campaign.pk, 1)
    again = api_as(newcomer).post("community/referrals/claim", {"code": code})
    assert (again.status_code, again.json()["code"]) == (409, "already_attributed")
    assert [c["role"] for c in api_as(newcomer).get("me/community").json()["campaigns"]] == ["referred"]
    bad = api_as(stranger).post("community/referrals/claim", {"code": "no-such!"})
    assert bad.status_code == 422


def test_codes_arriving_with_ingestion_are_attributed(ingest_api, django_capture_on_commit_callbacks):
    tier = TierFactory()
    now = timezone.now()
    campaign = CampaignFactory(
        programme=tier.programme, starts_at=now - timedelta(days=5), ends_at=now + timedelta(days=5)
    )
    a = MembershipFactory(programme=tier.programme, tier=tier)
    ambassador(campaign, a, code="AAAA1111")
    joined = (now - timedelta(days=1)).isoformat()
    rows = [
        {"external_id": "N1", "name": "Nia New", "joined_at": joined, "attributes": {"referral_code": "AAAA1111"}},
        {
            "external_id": "N2",
            "name": "Old Timer",
            "joined_at": "2020-01-01T00:00:00Z",
            "attributes": {"referral_code": "AAAA1111"},
        },
        {"external_id": "N3", "name": "No Code", "joined_at": joined},
    ]
    with django_capture_on_commit_callbacks(execute=True):
        response = ingest_api.post("ingest/customers", {"rows": rows})
    assert response.status_code == 200, response.content
    referral = Referral.objects.get()
    assert (referral.referred.external_id, referral.referrer_id, referral.source) == ("N1", a.customer_id, "ingestion")
    # A replay of the batch attributes nothing twice.
    with django_capture_on_commit_callbacks(execute=True):
        ingest_api.post("ingest/customers", {"rows": rows})
    assert Referral.objects.count() == 1
