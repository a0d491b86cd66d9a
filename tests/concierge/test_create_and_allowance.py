import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from concierge.models import AllowanceUsage, ConciergeRequest, RequestEvent
from concierge.services.requests import request_create
from core.errors import BusinessRuleError, PermissionDenied
from loyalty.models import Interaction, Membership
from tests.concierge.factories import NOW, make_member, make_request
from tests.conftest import api_as
from tests.factories import MembershipFactory, TierFactory, UserFactory

BODY = {"category": "tickets", "subject": "Two seats for the opera", "details": "Saturday", "visibility": "public"}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "first_hours,resolution_hours,rank",
    [(1, 8, 3), (4, 48, 2), (24, 120, 1)],
)
def test_priority_and_due_times_follow_the_tier(first_hours, resolution_hours, rank):
    user, membership = make_member(
        first_response_sla_hours=first_hours, resolution_sla_hours=resolution_hours, rank=rank
    )
    request = make_request(user)
    assert request.membership_id == membership.pk and request.tier_id == membership.tier_id
    assert request.priority == rank
    assert request.first_response_due_at == NOW + timedelta(hours=first_hours)
    assert request.resolution_due_at == NOW + timedelta(hours=resolution_hours)
    assert request.due_at == request.first_response_due_at
    assert request.status == "new"


@pytest.mark.django_db
def test_an_unexpired_override_tier_sets_the_slas():
    user, membership = make_member(first_response_sla_hours=24, resolution_sla_hours=96, rank=1)
    gold = TierFactory(programme=membership.programme, rank=5, first_response_sla_hours=1, resolution_sla_hours=6)
    membership.override_tier, membership.override_expires_at = gold, NOW + timedelta(days=1)
    membership.save()
    request = make_request(user)
    assert (request.priority, request.first_response_due_at) == (5, NOW + timedelta(hours=1))


@pytest.mark.django_db
def test_create_through_the_api_records_interaction_and_event():
    user, membership = make_member()
    response = api_as(user).post("concierge/requests", BODY)
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["category"], body["subject"], body["visibility"], body["status"]) == (
        "tickets",
        "Two seats for the opera",
        "public",
        "new",
    )
    request = ConciergeRequest.objects.get()
    interaction = Interaction.objects.get()
    assert (interaction.external_id, interaction.channel, interaction.kind, interaction.customer_id) == (
        f"concierge-request-{request.pk}",
        "concierge",
        "request_created",
        membership.customer_id,
    )
    assert interaction.occurred_at == request.created_at
    assert RequestEvent.objects.filter(request=request, action="created").count() == 1


@pytest.mark.django_db
def test_idempotent_create_returns_the_first_answer_and_creates_once():
    user, membership = make_member(monthly_request_allowance=5)
    api = api_as(user)
    headers = {"Idempotency-Key": "req-1"}
    first = api.post("concierge/requests", BODY, headers=headers)
    retry = api.post("concierge/requests", BODY, headers=headers)
    other = api.post("concierge/requests", {**BODY, "subject": "Something else"}, headers=headers)
    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    assert other.status_code == 409 and other.json()["code"] == "idempotency_key_reused"
    assert ConciergeRequest.objects.count() == 1
    assert AllowanceUsage.objects.get(membership=membership).used == 1
    assert Interaction.objects.count() == 1


@pytest.mark.django_db
def test_past_the_allowance_is_400_with_allowance_and_reset_time_and_creates_nothing():
    user, membership = make_member(monthly_request_allowance=2)
    make_request(user, now=NOW)
    make_request(user, now=NOW + timedelta(hours=1))
    with pytest.raises(BusinessRuleError) as exc:
        make_request(user, now=NOW + timedelta(hours=2))
    assert exc.value.code == "allowance_exhausted"
    assert exc.value.fields == {"allowance": 2, "used": 2, "resets_at": "2026-04-01T00:00:00+00:00"}
    assert ConciergeRequest.objects.count() == 2
    assert Interaction.objects.count() == 2
    # A new month starts with a fresh allowance.
    make_request(user, now=datetime(2026, 4, 1, 0, 0, tzinfo=UTC))
    assert ConciergeRequest.objects.count() == 3


@pytest.mark.django_db
def test_allowance_exhausted_through_the_api():
    user, _ = make_member(monthly_request_allowance=1)
    api = api_as(user)
    assert api.post("concierge/requests", BODY).status_code == 201
    response = api.post("concierge/requests", BODY)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "allowance_exhausted"
    assert body["fields"]["allowance"] == 1 and body["fields"]["used"] == 1
    assert datetime.fromisoformat(body["fields"]["resets_at"]).day == 1
    assert ConciergeRequest.objects.count() == 1


@pytest.mark.django_db
def test_december_resets_in_january():
    user, _ = make_member(monthly_request_allowance=0)
    with pytest.raises(BusinessRuleError) as exc:
        make_request(user, now=datetime(2026, 12, 31, 23, 59, tzinfo=UTC))
    assert exc.value.fields["resets_at"] == "2027-01-01T00:00:00+00:00"


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["control", "ended", "no_membership"])
def test_control_group_ended_and_non_members_cannot_create(kind):
    user = UserFactory(roles=["member"])
    if kind == "control":
        membership = MembershipFactory(control=True)
    elif kind == "ended":
        membership = MembershipFactory(status=Membership.Status.ENDED, ended_at=NOW)
    if kind != "no_membership":
        membership.customer.user = user
        membership.customer.save()
    response = api_as(user).post("concierge/requests", BODY)
    assert response.status_code == 403
    assert response.json()["code"] == "not_a_member"
    assert response.json()["detail"] == "You have no active programme membership."
    assert ConciergeRequest.objects.count() == 0
    assert AllowanceUsage.objects.count() == 0
    assert Interaction.objects.count() == 0
    with pytest.raises(PermissionDenied):
        request_create(user=user, category="dining", subject="x", now=NOW)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "payload,field",
    [
        ({**BODY, "category": "spa"}, "category"),
        ({**BODY, "visibility": "friends"}, "visibility"),
        ({**BODY, "subject": ""}, "subject"),
        ({**BODY, "subject": "   "}, "subject"),
        ({**BODY, "subject": "x" * 201}, "subject"),
        ({**BODY, "details": "a\x00b"}, "details"),
    ],
)
def test_bad_input_is_422_naming_the_field(payload, field):
    user, _ = make_member()
    response = api_as(user).post("concierge/requests", payload)
    assert response.status_code == 422
    assert list(response.json()["fields"]) == [field]
    assert ConciergeRequest.objects.count() == 0


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_creates_never_exceed_the_allowance():
    allowance, threads_n = 3, 10
    user, membership = make_member(monthly_request_allowance=allowance)
    barrier = threading.Barrier(threads_n)
    outcomes: list[str] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        try:
            barrier.wait()
            try:
                request_create(user=user, category="dining", subject=f"Table {i}", now=NOW)
                result = "created"
            except BusinessRuleError as exc:
                result = exc.code
            with lock:
                outcomes.append(result)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(outcomes) == ["allowance_exhausted"] * (threads_n - allowance) + ["created"] * allowance
    assert ConciergeRequest.objects.filter(membership=membership).count() == allowance
    assert AllowanceUsage.objects.get(membership=membership).used == allowance
    assert Interaction.objects.filter(kind="request_created").count() == allowance


@pytest.mark.django_db
def test_a_customer_without_the_member_role_cannot_create_and_nothing_is_written():
    """The same rule as event bookings: an active treatment membership is not enough without the member role."""
    user, membership = make_member()
    user.groups.clear()
    response = api_as(user).post("concierge/requests", BODY, HTTP_IDEMPOTENCY_KEY="no-role-1")
    assert response.status_code == 403
    assert response.json() == {
        "detail": "This operation needs the role member.",
        "code": "role_required",
        "fields": {"roles": ["member"]},
    }
    assert (ConciergeRequest.objects.count(), AllowanceUsage.objects.count(), RequestEvent.objects.count()) == (0, 0, 0)
    assert Interaction.objects.filter(customer=membership.customer).count() == 0
