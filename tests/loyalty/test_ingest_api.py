from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from accounts.services import api_key_create
from loyalty.models import Customer, Interaction, RevenueEntry
from tests.conftest import ApiClient, api_as
from tests.factories import CustomerFactory, UserFactory

pytestmark = pytest.mark.django_db


def interaction(ext: str, customer: str = "C1", channel: str = "phone", at: str = "2025-03-01T10:00:00Z", **kw):
    return {"external_id": ext, "customer_external_id": customer, "channel": channel, "occurred_at": at, **kw}


def customer_row(ext: str, name: str = "Ann Example", **kw):
    return {"external_id": ext, "name": name, "joined_at": "2020-01-01T00:00:00Z", **kw}


@pytest.fixture
def c1(db):
    return CustomerFactory(external_id="C1")


@pytest.fixture
def spies(monkeypatch):
    calls: dict[str, list] = {"churned": [], "interactions": [], "revenue": []}
    monkeypatch.setattr(
        "loyalty.services.churn.customers_churned", lambda **kw: calls["churned"].append(kw["customer_ids"])
    )
    monkeypatch.setattr(
        "loyalty.services.rollups.rollups_refresh_interactions", lambda **kw: calls["interactions"].append(kw)
    )
    monkeypatch.setattr("loyalty.services.rollups.rollups_refresh_revenue", lambda **kw: calls["revenue"].append(kw))
    return calls


def test_batch_of_interactions_is_created_and_counted(ingest_api, c1, spies):
    response = ingest_api.post(
        "ingest/interactions",
        {"rows": [interaction("i1"), interaction("i2", channel="app", at="2025-03-05T23:30:00-02:00", kind="login")]},
    )
    assert response.status_code == 200, response.content
    assert response.json() == {"kind": "interactions", "rows": 2, "created": 2, "updated": 0, "unchanged": 0}
    stored = Interaction.objects.order_by("external_id")
    rows = list(stored.values_list("external_id", "customer_id", "channel", "kind"))
    assert rows == [("i1", c1.id, "phone", ""), ("i2", c1.id, "app", "login")]
    assert Interaction.objects.get(external_id="i2").occurred_at == datetime(2025, 3, 6, 1, 30, tzinfo=UTC)
    assert spies["interactions"] == [
        {"customer_ids": [c1.id], "date_from": date(2025, 3, 1), "date_to": date(2025, 3, 6)}
    ]


def test_one_bad_row_among_good_ones_writes_nothing_and_is_named(ingest_api, c1, spies):
    rows = [interaction(f"i{n}") for n in range(5)]
    rows[3]["channel"] = "fax"
    response = ingest_api.post("ingest/interactions", {"rows": rows})
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "batch_rejected"
    assert list(body["fields"]) == ["rows.3.channel"]
    assert Interaction.objects.count() == 0
    assert spies["interactions"] == []


def test_every_bad_row_is_named_including_unknown_customers_and_duplicates(ingest_api, c1):
    rows = [
        interaction("i0"),
        interaction("i1", at="2025-02-30T10:00:00Z"),
        interaction("i2", customer="NOPE"),
        interaction("i0"),
        {"external_id": "i4", "customer_external_id": "C1", "channel": "phone"},
        interaction("i5", at="2025-03-01T10:00:00"),
    ]
    response = ingest_api.post("ingest/interactions", {"rows": rows})
    assert response.status_code == 422
    fields = response.json()["fields"]
    assert sorted(fields) == [
        "rows.1.occurred_at",
        "rows.2.customer_external_id",
        "rows.3.external_id",
        "rows.4.occurred_at",
        "rows.5.occurred_at",
    ]
    assert fields["rows.2.customer_external_id"] == ["Unknown customer 'NOPE'."]
    assert fields["rows.3.external_id"] == ["Duplicate external_id 'i0': also at 0."]
    assert fields["rows.4.occurred_at"] == ["Field required"]
    assert fields["rows.5.occurred_at"] == ["Input should have timezone info"]
    assert response.json()["detail"] == "5 problem(s) in the batch; nothing was written."
    assert Interaction.objects.count() == 0


def test_unknown_customer_alone_rejects_the_batch(ingest_api, c1):
    response = ingest_api.post("ingest/interactions", {"rows": [interaction("i1"), interaction("i2", customer="X")]})
    assert response.status_code == 422
    assert response.json()["fields"] == {"rows.1.customer_external_id": ["Unknown customer 'X'."]}
    assert Interaction.objects.count() == 0


def test_retried_batch_changes_nothing(ingest_api, c1, spies):
    rows = [customer_row("C1", name="Ann"), customer_row("C2", name="Bob", attributes={"plan": "l"}, birth_year=1990)]
    assert ingest_api.post("ingest/customers", {"rows": rows}).json() == {
        "kind": "customers",
        "rows": 2,
        "created": 1,
        "updated": 1,
        "unchanged": 0,
    }
    before = list(Customer.objects.order_by("id").values())
    response = ingest_api.post("ingest/customers", {"rows": rows})
    assert response.json() == {"kind": "customers", "rows": 2, "created": 0, "updated": 0, "unchanged": 2}
    assert list(Customer.objects.order_by("id").values()) == before  # updated_at untouched too


def test_changed_rows_are_updated(ingest_api, c1, spies):
    c2 = CustomerFactory(external_id="C2")
    rows = [interaction("i1"), interaction("i2", at="2025-01-10T00:00:00Z")]
    ingest_api.post("ingest/interactions", {"rows": rows})
    spies["interactions"].clear()
    # i2 moves to another customer and another day; i1 is resent unchanged.
    rows[1] = interaction("i2", customer="C2", channel="store", at="2025-04-02T09:00:00Z")
    response = ingest_api.post("ingest/interactions", {"rows": rows})
    assert response.json() == {"kind": "interactions", "rows": 2, "created": 0, "updated": 1, "unchanged": 1}
    moved = Interaction.objects.get(external_id="i2")
    assert (moved.customer_id, moved.channel, moved.occurred_at) == (
        c2.id,
        "store",
        datetime(2025, 4, 2, 9, tzinfo=UTC),
    )
    # Both the old and the new customer, from the old day to the new day, need fresh rollups.
    assert spies["interactions"] == [
        {"customer_ids": sorted([c1.id, c2.id]), "date_from": date(2025, 1, 10), "date_to": date(2025, 4, 2)}
    ]


def test_revenue_upsert_compares_amounts_as_decimals(ingest_api, c1, spies):
    rows = [{"external_id": "r1", "customer_external_id": "C1", "period": "2025-01-01", "amount": "10.5"}]
    assert ingest_api.post("ingest/revenue", {"rows": rows}).json()["created"] == 1
    rows[0]["amount"] = 10.50
    assert ingest_api.post("ingest/revenue", {"rows": rows}).json()["unchanged"] == 1
    rows[0]["amount"] = "11.00"
    assert ingest_api.post("ingest/revenue", {"rows": rows}).json()["updated"] == 1
    entry = RevenueEntry.objects.get()
    assert (entry.amount, entry.currency, entry.period) == (Decimal("11.00"), "EUR", date(2025, 1, 1))
    assert spies["revenue"][-1] == {"customer_ids": [c1.id], "date_from": date(2025, 1, 1), "date_to": date(2025, 1, 1)}


@pytest.mark.parametrize(
    ("field", "value", "message_part"),
    [
        ("amount", "-1", "greater than or equal to 0"),
        ("amount", "1.234", "decimal places"),
        ("currency", "eur", "pattern"),
        ("period", "2025-13-01", "date"),
    ],
)
def test_bad_revenue_values_are_named(ingest_api, c1, field, value, message_part):
    row = {"external_id": "r1", "customer_external_id": "C1", "period": "2025-01-01", "amount": "1", field: value}
    response = ingest_api.post("ingest/revenue", {"rows": [row]})
    assert response.status_code == 422
    [message] = response.json()["fields"][f"rows.0.{field}"]
    assert message_part in message
    assert RevenueEntry.objects.count() == 0


def test_customer_status_and_churned_at_must_agree(ingest_api):
    rows = [
        customer_row("A", status="churned"),
        customer_row("B", status="active", churned_at="2025-01-01T00:00:00Z"),
        customer_row("C", email="not-an-email"),
    ]
    response = ingest_api.post("ingest/customers", {"rows": rows})
    assert response.status_code == 422
    assert response.json()["fields"] == {
        "rows.0.churned_at": ["A churned customer needs churned_at."],
        "rows.1.churned_at": ["An active customer has no churned_at."],
        "rows.2.email": ["Enter a valid email address."],
    }
    assert Customer.objects.count() == 0


def test_customers_turning_churned_are_handed_to_the_churn_hook(ingest_api, spies):
    active = CustomerFactory(external_id="A")
    already = CustomerFactory(external_id="B", status="churned", churned_at=datetime(2024, 1, 1, tzinfo=UTC))
    churned_at = "2025-02-01T00:00:00Z"
    rows = [
        customer_row("A", status="churned", churned_at=churned_at),
        customer_row("B", status="churned", churned_at=churned_at),
        customer_row("N", status="churned", churned_at=churned_at),
    ]
    response = ingest_api.post("ingest/customers", {"rows": rows})
    assert response.json() == {"kind": "customers", "rows": 3, "created": 1, "updated": 2, "unchanged": 0}
    assert spies["churned"] == [[active.id]]
    already.refresh_from_db()
    assert already.churned_at == datetime(2025, 2, 1, tzinfo=UTC)
    # Sending it again is not a new churn.
    ingest_api.post("ingest/customers", {"rows": rows})
    assert spies["churned"] == [[active.id]]


def test_idempotency_key_replays_the_first_answer(ingest_api, c1):
    payload = {"rows": [interaction("i1")]}
    first = ingest_api.post("ingest/interactions", payload, headers={"Idempotency-Key": "batch-1"})
    Interaction.objects.all().delete()  # the replay must not write again
    second = ingest_api.post("ingest/interactions", payload, headers={"Idempotency-Key": "batch-1"})
    assert (first.status_code, second.status_code) == (200, 200)
    assert (
        second.json()
        == first.json()
        == {
            "kind": "interactions",
            "rows": 1,
            "created": 1,
            "updated": 0,
            "unchanged": 0,
        }
    )
    assert Interaction.objects.count() == 0
    other_payload = {"rows": [interaction("i2")]}
    other = ingest_api.post("ingest/interactions", other_payload, headers={"Idempotency-Key": "batch-1"})
    assert other.status_code == 409
    assert other.json()["code"] == "idempotency_key_reused"


def test_rejected_batch_leaves_no_idempotency_record(ingest_api, c1):
    bad = {"rows": [interaction("i1", channel="fax")]}
    assert ingest_api.post("ingest/interactions", bad, headers={"Idempotency-Key": "k"}).status_code == 422
    good = {"rows": [interaction("i1")]}
    assert ingest_api.post("ingest/interactions", good, headers={"Idempotency-Key": "k"}).status_code == 200
    assert Interaction.objects.count() == 1


def test_batch_size_is_bounded(ingest_api, c1):
    assert ingest_api.post("ingest/interactions", {"rows": []}).status_code == 422
    rows = [interaction(f"i{n}") for n in range(10_001)]
    response = ingest_api.post("ingest/interactions", {"rows": rows})
    assert response.status_code == 422
    assert "rows" in response.json()["fields"]
    assert Interaction.objects.count() == 0


def test_full_batch_of_ten_thousand_rows(ingest_api, c1):
    rows = [interaction(f"i{n}", at=f"2025-03-{1 + n % 28:02d}T10:00:00Z") for n in range(10_000)]
    response = ingest_api.post("ingest/interactions", {"rows": rows})
    assert response.json()["created"] == 10_000
    assert Interaction.objects.filter(customer=c1).count() == 10_000


def test_callers_without_an_ingest_key_are_refused(anon_api, c1):
    payload = {"rows": [interaction("i1")]}
    assert anon_api.post("ingest/interactions", payload).status_code == 401
    manager = UserFactory(roles=["programme_manager"])
    assert api_as(manager).post("ingest/interactions", payload).status_code == 401
    assert ApiClient({"X-API-Key": "pk_nope.nope"}).post("ingest/interactions", payload).status_code == 401
    assert Interaction.objects.count() == 0


def test_key_without_the_ingest_scope_is_forbidden(c1):
    key, plaintext = api_key_create(name="other", scopes=["ingest"])
    key.scopes = []
    key.save(update_fields=["scopes"])
    response = ApiClient({"X-API-Key": plaintext}).post("ingest/interactions", {"rows": [interaction("i1")]})
    assert response.status_code == 403
    assert response.json()["code"] == "api_key_scope_missing"
    assert Interaction.objects.count() == 0


def test_values_the_database_cannot_store_are_rejected(ingest_api, c1):
    rows = [
        interaction("i\x00", at="2025-03-01T10:00:00+21:00"),
        interaction("i2", at="1005-01-01T10:00:00Z"),
        interaction("i3", kind="a\x00"),
    ]
    response = ingest_api.post("ingest/interactions", {"rows": rows})
    assert response.status_code == 422
    assert sorted(response.json()["fields"]) == [
        "rows.0.external_id",
        "rows.1.occurred_at",
        "rows.2.kind",
    ]
    assert Interaction.objects.count() == 0
    # An unusual but valid offset is stored in UTC.
    response = ingest_api.post("ingest/interactions", {"rows": [interaction("i4", at="2025-03-01T22:00:00+21:00")]})
    assert response.status_code == 200
    assert Interaction.objects.get().occurred_at == datetime(2025, 3, 1, 1, tzinfo=UTC)
