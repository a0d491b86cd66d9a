import re
from datetime import UTC, date, datetime, timedelta

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.db import transaction
from django.test import Client
from django.utils import timezone

from accounts.models import User
from accounts.services import user_roles
from loyalty.models import Channel, Customer, Enrolment, Interaction, Membership
from loyalty.programmes.selectors.programmes import member_view
from loyalty.programmes.services.assignment import assignment_bucket_int
from loyalty.programmes.services.enrolment import enrolment_start
from loyalty.programmes.services.member_accounts import member_account_link, member_accounts_link_enrolled
from tests.conftest import ApiClient, api_as
from tests.factories import CustomerFactory, MembershipFactory, ProgrammeFactory, TierFactory, UserFactory
from tests.loyalty.programmes.factories import CustomerMetricsFactory, ScoringRunFactory, segment_run_with

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


def enrol(programme, customers, capture) -> Enrolment:
    """Enrol these customers (all qualify for Gold) through the real task chain, invitations included."""
    run = segment_run_with([(c, 60) for c in customers])
    with capture(execute=True):
        enrolment, _ = enrolment_start(programme=programme, segment_run=run)
    enrolment.refresh_from_db()
    assert enrolment.status == "succeeded", enrolment.error
    return enrolment


def linked_users() -> dict[int, int | None]:
    return dict(Customer.objects.values_list("id", "user_id"))


def test_login_verified_before_enrolment_is_linked_by_the_enrolment(programme, django_capture_on_commit_callbacks):
    programme.holdout_percent = 0
    programme.save()
    api = signup_and_verify("ana.member@example.test")
    user = User.objects.get(email="ana.member@example.test")
    customer = CustomerFactory(email="Ana.Member@Example.test")
    other = CustomerFactory(email="bob@example.test")
    assert api.get("me/membership").status_code == 404
    mail.outbox.clear()

    enrolment = enrol(programme, [customer, other], django_capture_on_commit_callbacks)

    assert linked_users() == {customer.pk: user.pk, other.pk: None}
    assert user_roles(user) == ["member"]
    assert enrolment.result["accounts_linked"] == 1
    response = api.get("me/membership")
    assert response.status_code == 200, response.content
    assert response.json()["tier"] == {"name": "Gold", "rank": 2}
    # The invitation tells the linked member to sign in, the other one to create an account.
    # Ana's goes to her verified login, the contact address of a linked member.
    invitations = {message.to[0]: message.body for message in mail.outbox}
    assert sorted(invitations) == ["ana.member@example.test", "bob@example.test"]
    assert "Sign in to your account to see your benefits" in invitations["ana.member@example.test"]
    assert "Create your account" not in invitations["ana.member@example.test"]
    assert "Create your account with this email address (bob@example.test)" in invitations["bob@example.test"]


def test_enrolment_links_no_unverified_email(programme, django_capture_on_commit_callbacks):
    programme.holdout_percent = 0
    programme.save()
    unverified = UserFactory(email="pending@example.test")
    EmailAddress.objects.filter(user=unverified).update(verified=False)
    customer = CustomerFactory(email="pending@example.test")
    enrolment = enrol(programme, [customer], django_capture_on_commit_callbacks)
    assert linked_users() == {customer.pk: None}
    assert user_roles(unverified) == []
    assert enrolment.result["accounts_linked"] == 0


def _seed_splitting(treatment: Customer, control: Customer) -> str:
    """A programme seed that puts `treatment` in treatment and `control` in control at a 50% holdout."""
    for n in range(1000):
        seed = f"split-{n}"
        if assignment_bucket_int(seed, treatment.pk) >= 500_000 > assignment_bucket_int(seed, control.pk):
            return seed
    raise AssertionError("no seed found")


def test_enrolment_links_treatment_customers_and_never_the_control_group(programme, django_capture_on_commit_callbacks):
    treated_user, held_out_user = UserFactory(email="treated@example.test"), UserFactory(email="held@example.test")
    treated, held_out = CustomerFactory(email="treated@example.test"), CustomerFactory(email="held@example.test")
    programme.holdout_percent = 50
    programme.seed = _seed_splitting(treated, held_out)
    programme.save()
    enrol(programme, [treated, held_out], django_capture_on_commit_callbacks)
    groups = dict(Membership.objects.values_list("customer_id", "group"))
    assert groups == {treated.pk: "treatment", held_out.pk: "control"}
    assert linked_users() == {treated.pk: treated_user.pk, held_out.pk: None}
    assert (user_roles(treated_user), user_roles(held_out_user)) == (["member"], [])


def test_enrolment_never_links_a_login_twice_nor_steals_a_linked_customer(
    programme, django_capture_on_commit_callbacks
):
    programme.holdout_percent = 0
    programme.save()
    # Ann's login is already linked to her customer; a second customer carries her email too.
    ann = UserFactory(email="ann@example.test", roles=["member"])
    ann_customer = CustomerFactory(email="ann@example.test", user=ann)
    ann_twin = CustomerFactory(email="ann@example.test")
    # Bob's verified email is on a customer already linked to Carl.
    bob, carl = UserFactory(email="bob@example.test"), UserFactory(email="carl@example.test")
    carls_customer = CustomerFactory(email="bob@example.test", user=carl)
    enrolment = enrol(programme, [ann_customer, ann_twin, carls_customer], django_capture_on_commit_callbacks)
    assert linked_users() == {ann_customer.pk: ann.pk, ann_twin.pk: None, carls_customer.pk: carl.pk}
    assert (user_roles(bob), user_roles(carl)) == ([], [])
    assert enrolment.result["accounts_linked"] == 0


def test_two_customers_with_the_login_email_link_one_the_way_the_adapter_would(
    programme, django_capture_on_commit_callbacks
):
    programme.holdout_percent = 0
    programme.save()
    user = UserFactory(email="same@example.test")
    customers = [CustomerFactory(email=email) for email in ("same@example.test", "SAME@example.test")]
    first = min(c.pk for c in customers)
    enrol(programme, list(reversed(customers)), django_capture_on_commit_callbacks)
    assert linked_users() == {c.pk: (user.pk if c.pk == first else None) for c in customers}
    # member_account_link, called on verification, would choose the same customer.
    savepoint = transaction.savepoint()
    Customer.objects.filter(user=user).update(user=None)
    assert member_account_link(user=user, email="same@example.test").pk == first
    transaction.savepoint_rollback(savepoint)


def test_linking_after_enrolment_takes_the_same_queries_for_any_number_of_links(programme, django_assert_num_queries):
    for size in (1, 6):
        users = [UserFactory() for _ in range(size)]
        customers = [CustomerFactory(email=u.email.upper()) for u in users]
        run = segment_run_with([(c, 60) for c in customers])
        for c in customers:
            MembershipFactory(programme=programme, customer=c, tier=tier(programme, "Gold"), source_run=run)
        with django_assert_num_queries(5):  # savepoint, UPDATE ... FROM, member group, INSERT of roles, release
            linked = member_accounts_link_enrolled(programme_id=programme.pk, segment_run_id=run.pk, now=timezone.now())
        assert linked == size
        assert dict(Customer.objects.filter(pk__in=[c.pk for c in customers]).values_list("pk", "user_id")) == {
            c.pk: u.pk for c, u in zip(customers, users, strict=True)
        }
        assert [user_roles(u) for u in users] == [["member"]] * size


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
    # session, user, membership (with the role), tiers with the allowance used and the metric of the latest run
    with django_assert_num_queries(4):
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
