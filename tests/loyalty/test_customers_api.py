from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from loyalty.customers.selectors import _month_starts
from loyalty.models import Interaction, RevenueEntry
from tests.conftest import api_as
from tests.factories import CustomerFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(db):
    ann = CustomerFactory(external_id="A1", name="Ann Smith", email="ann@corp.example", region="north")
    bob = CustomerFactory(
        external_id="B2",
        name="Bob Jones",
        email="bob@mail.example",
        region="south",
        status="churned",
        churned_at=datetime(2025, 1, 1, tzinfo=UTC),
        joined_at=datetime(2022, 5, 1, tzinfo=UTC),
    )
    cat = CustomerFactory(external_id="C3", name="Cat Smithers", email="cat@corp.example", region="south")
    return ann, bob, cat


def ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [item["external_id"] for item in response.json()["items"]]


def test_list_filters_and_search(manager_api, people):
    assert ids(manager_api.get("customers")) == ["A1", "B2", "C3"]
    assert manager_api.get("customers").json()["count"] == 3
    assert ids(manager_api.get("customers", {"status": "churned"})) == ["B2"]
    assert ids(manager_api.get("customers", {"region": "south"})) == ["B2", "C3"]
    assert ids(manager_api.get("customers", {"q": "smith"})) == ["A1", "C3"]
    assert ids(manager_api.get("customers", {"q": "B2"})) == ["B2"]
    assert ids(manager_api.get("customers", {"q": "cat@"})) == ["C3"]
    assert ids(manager_api.get("customers", {"joined_from": "2021-01-01"})) == ["B2"]
    assert ids(manager_api.get("customers", {"joined_to": "2021-01-01"})) == ["A1", "C3"]
    assert ids(manager_api.get("customers", {"ordering": "-name"})) == ["C3", "B2", "A1"]
    page = manager_api.get("customers", {"limit": 1, "offset": 1}).json()
    assert (page["count"], [i["external_id"] for i in page["items"]]) == (3, ["B2"])
    assert manager_api.get("customers", {"ordering": "email"}).status_code == 422
    assert manager_api.get("customers", {"status": "gone"}).status_code == 422
    assert manager_api.get("customers", {"q": "a\x00b"}).status_code == 422


def test_list_item_shape(agent_api, people):
    ann = people[0]
    assert agent_api.get("customers", {"q": "A1"}).json()["items"] == [
        {
            "id": ann.id,
            "external_id": "A1",
            "name": "Ann Smith",
            "email": "ann@corp.example",
            "region": "north",
            "status": "active",
            "joined_at": "2020-01-01T00:00:00Z",
            "churned_at": None,
        }
    ]


def test_only_managers_and_agents_read_customers(anon_api, people):
    ann = people[0]
    assert anon_api.get("customers").status_code == 401
    assert anon_api.get(f"customers/{ann.id}").status_code == 401
    for role in ("member", "partner_staff"):
        client = api_as(UserFactory(roles=[role]))
        assert client.get("customers").status_code == 403
        response = client.get(f"customers/{ann.id}")
        assert (response.status_code, response.json()["code"]) == (403, "role_required")


def test_list_query_count_does_not_grow(manager_api, people, django_assert_num_queries):
    CustomerFactory.create_batch(20)
    # Session-token auth (2: session, user) + role check (1) + page (20 of 50: it ends the list, no COUNT).
    with django_assert_num_queries(4):
        response = manager_api.get("customers", {"limit": 100})
    assert response.json()["count"] == 23


def test_detail_has_revenue_by_month_channel_mix_and_last_interactions(manager_api, people):
    ann, bob, _ = people
    now = timezone.now()
    months = _month_starts(now, 12)
    RevenueEntry.objects.create(customer=ann, period=months[-1], amount=Decimal("10.00"), external_id="r1")
    RevenueEntry.objects.create(customer=ann, period=months[-1], amount=Decimal("5.50"), external_id="r2")
    RevenueEntry.objects.create(customer=ann, period=months[0], amount=Decimal("7.25"), external_id="r3")
    RevenueEntry.objects.create(
        customer=ann, period=months[0] - timedelta(days=1), amount=Decimal("99"), external_id="too-old"
    )
    RevenueEntry.objects.create(customer=bob, period=months[-1], amount=Decimal("1000"), external_id="other")
    for n, (channel, days_ago) in enumerate(
        [("phone", 1), ("phone", 3), ("app", 2), ("phone", 30), ("store", 400), ("email", 5)]
    ):
        Interaction.objects.create(
            customer=ann, channel=channel, occurred_at=now - timedelta(days=days_ago), external_id=f"i{n}"
        )
    Interaction.objects.create(customer=bob, channel="social", occurred_at=now, external_id="bob")

    body = manager_api.get(f"customers/{ann.id}").json()
    assert body["external_id"] == "A1"
    assert [m["month"] for m in body["revenue_by_month"]] == [m.isoformat() for m in months]
    amounts = [m["amount"] for m in body["revenue_by_month"]]
    assert amounts == ["7.25"] + ["0.00"] * 10 + ["15.50"]
    assert (body["revenue_total"], body["revenue_currency"]) == ("22.75", "EUR")
    assert [(c["channel"], c["count"], c["share"]) for c in body["channel_mix"]] == [
        ("phone", 3, 0.6),
        ("app", 1, 0.2),
        ("email", 1, 0.2),
    ]
    assert [i["external_id"] for i in body["last_interactions"]] == ["i0", "i2", "i1", "i5", "i3", "i4"]


def test_detail_query_count_and_not_found(agent_api, people, django_assert_num_queries):
    ann = people[0]
    for n in range(30):
        Interaction.objects.create(
            customer=ann, channel="phone", occurred_at=timezone.now() - timedelta(hours=n), external_id=f"i{n}"
        )
    # Auth (2: session, user) + role (1) + customer, revenue by month, channel mix, last interactions.
    with django_assert_num_queries(7):
        response = agent_api.get(f"customers/{ann.id}")
    assert len(response.json()["last_interactions"]) == 10
    response = agent_api.get("customers/999999")
    assert (response.status_code, response.json()["code"]) == (404, "customer_not_found")


def test_detail_money_is_a_plain_two_place_decimal_with_its_currency(manager_api, people):
    ann = people[0]
    months = _month_starts(timezone.now(), 12)
    for n, amount in enumerate(["1000.10", "17.25"]):
        RevenueEntry.objects.create(customer=ann, period=months[-1], amount=Decimal(amount), external_id=f"m{n}")
    RevenueEntry.objects.create(
        customer=ann, period=months[-1], amount=Decimal("3.1"), currency="USD", external_id="usd"
    )

    response = manager_api.get(f"customers/{ann.id}")

    body = response.json()
    assert (body["revenue_total"], body["revenue_currency"]) == ("1017.35", "EUR")
    assert body["revenue_by_month"][0] == {"month": months[0].isoformat(), "amount": "0.00", "currency": "EUR"}
    assert body["revenue_by_month"][-2:] == [
        {"month": months[-1].isoformat(), "amount": "1017.35", "currency": "EUR"},
        {"month": months[-1].isoformat(), "amount": "3.10", "currency": "USD"},
    ]
    assert len(body["revenue_by_month"]) == 13
    assert '"1017.35"' in response.content.decode() and "1017.350" not in response.content.decode()
    schema = manager_api.get("/api/v1/openapi.json").json()["components"]["schemas"]["MonthRevenueOut"]
    assert schema["properties"]["amount"]["type"] == "string"
