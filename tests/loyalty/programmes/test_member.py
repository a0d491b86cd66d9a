import re
from datetime import UTC, date, datetime, timedelta

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from accounts.models import User
from accounts.services import user_roles
from loyalty.models import Channel, Interaction
from loyalty.selectors.programmes import member_view
from loyalty.services.member_accounts import member_account_link
from tests.conftest import ApiClient, api_as
from tests.factories import CustomerFactory, MembershipFactory, ProgrammeFactory, TierFactory, UserFactory
from tests.loyalty.programmes.factories import CustomerMetricsFactory, ScoringRunFactory

pytestmark = pytest.mark.django_db
PASSWORD = "a-long-member-password-77"


def signup_and_verify(email: str) -> ApiClient:
    """Sign up through the allauth app client and verify the email with the code it sends."""
    client = Client()
    mail.outbox.clear()
    response = client.post(
        "/_allauth/app/v1/auth/signup", {"email": email, "password": PASSWORD}, content_type="application/json"
    )
    assert response.status_code == 401, response.content  # pending email verification
    token = response.json()["meta"]["session_token"]
    code = re.search(r"^([A-Z0-9]{4}-[A-Z0-9]{4})$", mail.outbox[-1].body, re.M).group(1)
    verified = client.post(
        "/_allauth/app/v1/auth/email/verify",
        {"key": code},
        content_type="application/json",
        headers={"X-Session-Token": token},
    )
    assert verified.status_code == 200, verified.content
    return ApiClient({"X-Session-Token": verified.json()["meta"]["session_token"]})


@pytest.fixture
def programme():
    programme = ProgrammeFactory(name="Premier Club", grace_period_days=30, evaluation_cadence_days=30)
    TierFactory(programme=programme, rank=1, name="Silver", threshold=0, monthly_request_allowance=2)
    TierFactory(programme=programme, rank=2, name="Gold", threshold=50, monthly_request_allowance=5)
    TierFactory(programme=programme, rank=3, name="Platinum", threshold=90, monthly_request_allowance=10)
    return programme


def tier(programme, name):
    return programme.tiers.get(name=name)


def test_treatment_member_signs_up_with_the_email_on_file_and_sees_the_membership(programme):
    customer = CustomerFactory(email="Ana.Member@example.test")
    MembershipFactory(programme=programme, customer=customer, tier=tier(programme, "Gold"))
    api = signup_and_verify("ana.member@example.test")
    customer.refresh_from_db()
    assert customer.user is not None and user_roles(customer.user) == ["member"]
    response = api.get("me/membership")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["programme"]["name"], body["tier"], body["tier_source"]) == (
        "Premier Club",
        {"name": "Gold", "rank": 2},
        "evaluated",
    )
    assert body["benefits"]["monthly_request_allowance"] == 5
    assert body["allowance"]["left"] == 5


@pytest.mark.parametrize("kind", ["control", "ended", "stranger"])
def test_held_out_ended_or_unknown_email_gets_no_member_access_and_the_same_answer(programme, kind):
    customer = CustomerFactory(email="someone@example.test")
    if kind == "control":
        MembershipFactory(programme=programme, customer=customer, control=True, shadow_tier=tier(programme, "Gold"))
    elif kind == "ended":
        MembershipFactory(
            programme=programme,
            customer=customer,
            tier=tier(programme, "Gold"),
            status="ended",
            ended_at=timezone.now(),
        )
    email = "nobody@example.test" if kind == "stranger" else "someone@example.test"
    api = signup_and_verify(email)
    customer.refresh_from_db()
    assert customer.user is None
    response = api.get("me/membership")
    assert (response.status_code, response.json()) == (
        404,
        {"detail": "You have no programme membership.", "code": "no_membership", "fields": {}},
    )
    assert user_roles(User.objects.get(email=email)) == []


def test_linking_never_steals_a_linked_customer(programme):
    first, second = UserFactory(), UserFactory()
    customer = CustomerFactory(email="shared@example.test")
    MembershipFactory(programme=programme, customer=customer, tier=tier(programme, "Gold"))
    assert member_account_link(user=first, email="shared@example.test") == customer
    assert member_account_link(user=second, email="shared@example.test") is None
    customer.refresh_from_db()
    assert customer.user == first and user_roles(second) == []


def _member(programme, tier_name, **kwargs):
    user = UserFactory(roles=["member"])
    customer = CustomerFactory(user=user)
    membership = MembershipFactory(programme=programme, customer=customer, tier=tier(programme, tier_name), **kwargs)
    return user, customer, membership


def test_each_member_sees_only_their_own_membership(programme, django_assert_num_queries):
    ana, _, _ = _member(programme, "Silver")
    bob, _, _ = _member(programme, "Platinum")
    ana_api, bob_api = api_as(ana), api_as(bob)
    assert ana_api.get("me/membership").json()["tier"]["name"] == "Silver"
    assert bob_api.get("me/membership").json()["tier"]["name"] == "Platinum"
    with django_assert_num_queries(8):  # token user, roles, membership, tiers, allowance, scoring run, metrics
        ana_api.get("me/membership")


def test_allowance_progress_next_evaluation_and_downgrade_warning(programme):
    now = datetime(2026, 5, 20, 12, 0, tzinfo=UTC)
    programme.last_evaluated_at = datetime(2026, 5, 1, tzinfo=UTC)
    programme.save()
    user, customer, membership = _member(programme, "Gold", below_threshold_since=date(2026, 5, 1))
    run = ScoringRunFactory(as_of=now - timedelta(days=2))
    CustomerMetricsFactory(scoring_run=run, customer=customer, revenue_percentile=42.5)
    for i, at in enumerate(
        [datetime(2026, 5, 2, tzinfo=UTC), datetime(2026, 5, 19, tzinfo=UTC), datetime(2026, 4, 30, tzinfo=UTC)]
    ):
        Interaction.objects.create(
            customer=customer, channel=Channel.CONCIERGE, kind="request_created", occurred_at=at, external_id=f"cr-{i}"
        )
    Interaction.objects.create(
        customer=customer, channel=Channel.CONCIERGE, kind="message", occurred_at=now, external_id="cm-1"
    )
    view = member_view(user, now=now)
    assert view["allowance"] == {"monthly": 5, "used": 2, "left": 3, "resets_at": datetime(2026, 6, 1, tzinfo=UTC)}
    assert view["progress"] == {
        "metric": "revenue_percentile",
        "value": 42.5,
        "next_tier": "Platinum",
        "threshold": 90.0,
        "remaining": 47.5,
    }
    assert view["next_evaluation_at"] == datetime(2026, 5, 31, tzinfo=UTC)
    assert view["downgrade_warning"] == {
        "below_threshold_since": date(2026, 5, 1),
        "downgrade_to": "Silver",
        "earliest_downgrade_on": date(2026, 5, 31),
        "threshold": 50.0,
    }


def test_override_shows_its_benefits_until_it_expires(programme):
    expires = datetime(2026, 6, 1, tzinfo=UTC)
    user, _, _ = _member(
        programme,
        "Silver",
        override_tier=tier(programme, "Platinum"),
        override_expires_at=expires,
        override_reason="VIP",
    )
    during = member_view(user, now=expires - timedelta(days=1))
    assert (during["tier"]["name"], during["tier_source"], during["benefits"]["monthly_request_allowance"]) == (
        "Platinum",
        "override",
        10,
    )
    after = member_view(user, now=expires + timedelta(seconds=1))
    assert (after["tier"]["name"], after["tier_source"], after["override_expires_at"]) == ("Silver", "evaluated", None)


def test_member_role_without_a_link_or_a_link_without_the_role_sees_nothing(programme):
    no_link = UserFactory(roles=["member"])
    assert api_as(no_link).get("me/membership").status_code == 404
    no_role = UserFactory()
    MembershipFactory(programme=programme, customer=CustomerFactory(user=no_role), tier=tier(programme, "Gold"))
    assert api_as(no_role).get("me/membership").status_code == 404
