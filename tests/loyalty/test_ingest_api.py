from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.services import api_key_create
from loyalty.models import (
    Customer,
    Interaction,
    InteractionDayRollup,
    Membership,
    RetentionOutcome,
    RevenueDayRollup,
    RevenueEntry,
    TierChange,
)
from loyalty.segmentation.services.rollups import rollups_apply_pending
from tests.conftest import ApiClient, api_as
from tests.factories import CustomerFactory, MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def interaction(ext: str, customer: str = "C1", channel: str = "phone", at: str = "2025-03-01T10:00:00Z", **kw):
    return {"external_id": ext, "customer_external_id": customer, "channel": channel, "occurred_at": at, **kw}


def customer_row(ext: str, name: str = "Ann Example", **kw):
    return {"external_id": ext, "name": name, "joined_at": "2020-01-01T00:00:00Z", **kw}


@pytest.fixture
def c1(db):
    return CustomerFactory(external_id="C1")


def interaction_rollups() -> list[tuple]:
    rollups_apply_pending()  # as every reader of the rollups does (batches of new rows apply after commit)
    rows = InteractionDayRollup.objects.order_by("customer_id", "day", "channel")
    return list(rows.values_list("customer_id", "day", "channel", "count"))


def revenue_rollups() -> list[tuple]:
    rollups_apply_pending()
    return list(
        RevenueDayRollup.objects.order_by("customer_id", "day").values_list("customer_id", "day", "amount_minor")
    )


def test_batch_of_interactions_is_created_and_counted(ingest_api, c1):
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
    # Rolled up per UTC day: i2 happened on 6 March in UTC.
    assert interaction_rollups() == [(c1.id, date(2025, 3, 1), "phone", 1), (c1.id, date(2025, 3, 6), "app", 1)]


def test_retried_interaction_batch_leaves_the_rollups_unchanged(ingest_api, c1):
    rows = [interaction("i1"), interaction("i2"), interaction("i3", channel="app")]
    assert ingest_api.post("ingest/interactions", {"rows": rows}).json()["created"] == 3
    expected = [(c1.id, date(2025, 3, 1), "app", 1), (c1.id, date(2025, 3, 1), "phone", 2)]
    assert interaction_rollups() == expected
    assert ingest_api.post("ingest/interactions", {"rows": rows}).json()["unchanged"] == 3
    assert interaction_rollups() == expected  # counted once, not added again


def test_one_bad_row_among_good_ones_writes_nothing_and_is_named(ingest_api, c1):
    rows = [interaction(f"i{n}") for n in range(5)]
    rows[3]["channel"] = "fax"
    response = ingest_api.post("ingest/interactions", {"rows": rows})
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "batch_rejected"
    assert list(body["fields"]) == ["rows.3.channel"]
    assert Interaction.objects.count() == 0
    assert interaction_rollups() == []


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


def test_retried_batch_changes_nothing(ingest_api, c1):
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


def test_changed_rows_are_updated(ingest_api, c1):
    c2 = CustomerFactory(external_id="C2")
    rows = [interaction("i1"), interaction("i2", at="2025-01-10T00:00:00Z")]
    ingest_api.post("ingest/interactions", {"rows": rows})
    assert interaction_rollups() == [(c1.id, date(2025, 1, 10), "phone", 1), (c1.id, date(2025, 3, 1), "phone", 1)]
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
    # The count leaves the old customer, day and channel and moves to the new ones.
    assert interaction_rollups() == [(c1.id, date(2025, 3, 1), "phone", 1), (c2.id, date(2025, 4, 2), "store", 1)]


def test_batch_of_new_and_stored_rows_counts_each_and_adds_only_the_new_ones_to_the_rollups(ingest_api, c1):
    # On PostgreSQL the plain INSERT of every row as new fails on i1 (stored) and the general path takes over.
    ingest_api.post("ingest/interactions", {"rows": [interaction("i1")]})
    rows = [interaction("i0", channel="app"), interaction("i1"), interaction("i2")]
    response = ingest_api.post("ingest/interactions", {"rows": rows})
    assert response.json() == {"kind": "interactions", "rows": 3, "created": 2, "updated": 0, "unchanged": 1}
    assert sorted(Interaction.objects.values_list("external_id", flat=True)) == ["i0", "i1", "i2"]
    assert interaction_rollups() == [(c1.id, date(2025, 3, 1), "app", 1), (c1.id, date(2025, 3, 1), "phone", 2)]


def test_text_with_tabs_backslashes_newlines_and_quotes_is_stored_as_sent(ingest_api, c1):
    kind = 'a\tb\\c\nd\re "q", \u00e9 \\N'
    attributes = {"note": 'x\\y\t"z"\n', "n": 1}
    rows = [interaction("i1", kind=kind)]
    assert ingest_api.post("ingest/interactions", {"rows": rows}).json()["created"] == 1
    assert Interaction.objects.get().kind == kind
    customer = customer_row("C9", name="Tab\tName", region="\\N", attributes=attributes)
    assert ingest_api.post("ingest/customers", {"rows": [customer]}).json()["created"] == 1
    stored = Customer.objects.get(external_id="C9")
    assert (stored.name, stored.region, stored.attributes) == ("Tab\tName", "\\N", attributes)
    # Sent again: compared equal in the database, so unchanged.
    assert ingest_api.post("ingest/interactions", {"rows": rows}).json()["unchanged"] == 1
    assert ingest_api.post("ingest/customers", {"rows": [customer]}).json()["unchanged"] == 1


def test_customers_whose_external_ids_hold_quotes_commas_braces_and_backslashes_are_found(ingest_api):
    # The batch's customers are looked up with one text[] literal: every character that literal quotes.
    refs = ['q"uote', "com,ma", "{brace}", "back\\slash", "sp ace", "NULL", 'tail\\"']
    customers = {ref: CustomerFactory(external_id=ref) for ref in refs}
    rows = [interaction(f"i{n}", customer=ref) for n, ref in enumerate(refs)]
    response = ingest_api.post("ingest/interactions", {"rows": rows})
    assert response.json() == {"kind": "interactions", "rows": 7, "created": 7, "updated": 0, "unchanged": 0}
    stored = dict(Interaction.objects.values_list("external_id", "customer_id"))
    assert stored == {f"i{n}": customers[ref].id for n, ref in enumerate(refs)}


def test_a_row_that_is_not_an_object_is_a_bad_row_of_the_batch(ingest_api, c1):
    response = ingest_api.post("ingest/interactions", {"rows": [interaction("i0"), 7, "row", interaction("i3")]})
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "batch_rejected"
    assert body["fields"] == {
        "rows.1.__row__": ["Input should be a valid dictionary"],
        "rows.2.__row__": ["Input should be a valid dictionary"],
    }
    assert Interaction.objects.count() == 0


def test_revenue_upsert_compares_amounts_as_decimals(ingest_api, c1):
    rows = [{"external_id": "r1", "customer_external_id": "C1", "period": "2025-01-01", "amount": "10.5"}]
    assert ingest_api.post("ingest/revenue", {"rows": rows}).json()["created"] == 1
    assert revenue_rollups() == [(c1.id, date(2025, 1, 1), 1050)]
    rows[0]["amount"] = 10.50
    assert ingest_api.post("ingest/revenue", {"rows": rows}).json()["unchanged"] == 1
    assert revenue_rollups() == [(c1.id, date(2025, 1, 1), 1050)]
    rows[0]["amount"] = "11.00"
    assert ingest_api.post("ingest/revenue", {"rows": rows}).json()["updated"] == 1
    entry = RevenueEntry.objects.get()
    assert (entry.amount, entry.currency, entry.period) == (Decimal("11.00"), "EUR", date(2025, 1, 1))
    assert revenue_rollups() == [(c1.id, date(2025, 1, 1), 1100)]


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


def churn_state() -> tuple[list, list, list]:
    memberships = Membership.objects.order_by("id").values_list("id", "status", "ended_at")
    outcomes = RetentionOutcome.objects.order_by("id").values_list("membership_id", "outcome", "source", "observed_at")
    changes = TierChange.objects.order_by("id").values_list(
        "membership_id", "from_tier_id", "to_tier_id", "reason", "at"
    )
    return list(memberships), list(outcomes), list(changes)


def test_customers_turning_churned_end_their_memberships_and_get_a_churn_outcome(ingest_api):
    active = CustomerFactory(external_id="A")
    already = CustomerFactory(external_id="B", status="churned", churned_at=datetime(2024, 1, 1, tzinfo=UTC))
    enrolled = datetime(2023, 6, 1, tzinfo=UTC)
    member = MembershipFactory(customer=active, enrolled_at=enrolled)
    held_out = MembershipFactory(customer=active, enrolled_at=enrolled, control=True)
    # B churned before this batch; its membership is still live (the re-evaluation sweep has not run yet), so
    # treating B as a new churn would show on it.
    untouched = MembershipFactory(customer=already, enrolled_at=enrolled)
    churned_at = "2025-02-01T00:00:00Z"
    rows = [
        customer_row("A", status="churned", churned_at=churned_at),
        customer_row("B", status="churned", churned_at=churned_at),
        customer_row("N", status="churned", churned_at=churned_at),
    ]
    before = timezone.now()
    response = ingest_api.post("ingest/customers", {"rows": rows})
    after = timezone.now()
    assert response.json() == {"kind": "customers", "rows": 3, "created": 1, "updated": 2, "unchanged": 0}
    member.refresh_from_db()
    assert before <= member.ended_at <= after
    ended_at = member.ended_at
    memberships, outcomes, changes = state = churn_state()
    assert memberships == [
        (member.id, "ended", ended_at),
        (held_out.id, "ended", ended_at),
        (untouched.id, "active", None),
    ]
    churn_day = datetime(2025, 2, 1, tzinfo=UTC)
    assert outcomes == [(member.id, "churned", "derived", churn_day), (held_out.id, "churned", "derived", churn_day)]
    # Only the treatment member had a tier to leave.
    assert changes == [(member.id, member.tier_id, None, "ended", ended_at)]
    already.refresh_from_db()
    assert already.churned_at == churn_day
    # Sending it again is not a new churn.
    ingest_api.post("ingest/customers", {"rows": rows})
    assert churn_state() == state


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
    # NUL characters are refused by the API's parser for every operation, before row validation.
    rows = [interaction("i\x00"), interaction("i2"), interaction("i3", kind="a\x00")]
    response = ingest_api.post("ingest/interactions", {"rows": rows})
    assert response.status_code == 422
    assert sorted(response.json()["fields"]) == ["rows.0.external_id", "rows.2.kind"]
    rows = [interaction("i1", at="2025-03-01T10:00:00+21:00"), interaction("i2", at="1005-01-01T10:00:00Z")]
    response = ingest_api.post("ingest/interactions", {"rows": rows})
    assert response.status_code == 422
    assert sorted(response.json()["fields"]) == ["rows.1.occurred_at"]
    assert Interaction.objects.count() == 0
    # An unusual but valid offset is stored in UTC.
    response = ingest_api.post("ingest/interactions", {"rows": [interaction("i4", at="2025-03-01T22:00:00+21:00")]})
    assert response.status_code == 200
    assert Interaction.objects.get().occurred_at == datetime(2025, 3, 1, 1, tzinfo=UTC)


FULL = {
    "email": "ann@example.test",
    "phone": "+33 1 23 45 67 89",
    "region": "north",
    "birth_year": 1985,
    "attributes": {"plan": "l"},
    "status": "churned",
    "churned_at": "2025-01-31T00:00:00Z",
}


def stored_optional(ext: str) -> tuple:
    customer = Customer.objects.get(external_id=ext)
    return (
        customer.name,
        customer.email,
        customer.phone,
        customer.region,
        customer.birth_year,
        customer.attributes,
        customer.status,
        customer.churned_at,
    )


def test_upsert_with_only_required_fields_keeps_the_stored_optional_ones(ingest_api):
    assert ingest_api.post("/api/v1/ingest/customers", {"rows": [customer_row("K1", **FULL)]}).status_code == 200
    response = ingest_api.post("/api/v1/ingest/customers", {"rows": [customer_row("K1", name="Ann Renamed")]})
    assert response.status_code == 200
    assert response.json() == {"kind": "customers", "rows": 1, "created": 0, "updated": 1, "unchanged": 0}
    assert stored_optional("K1") == (
        "Ann Renamed",
        "ann@example.test",
        "+33 1 23 45 67 89",
        "north",
        1985,
        {"plan": "l"},
        "churned",
        datetime(2025, 1, 31, tzinfo=UTC),
    )
    again = ingest_api.post("/api/v1/ingest/customers", {"rows": [customer_row("K1", name="Ann Renamed")]})
    assert again.json()["unchanged"] == 1


def test_upsert_with_explicit_nulls_clears_the_optional_fields(ingest_api):
    ingest_api.post("/api/v1/ingest/customers", {"rows": [customer_row("K2", **FULL)]})
    nulls = {"email": None, "phone": None, "region": None, "birth_year": None, "attributes": None}
    response = ingest_api.post("/api/v1/ingest/customers", {"rows": [customer_row("K2", **nulls)]})
    assert response.status_code == 200
    assert response.json()["updated"] == 1
    # status and churned_at were omitted: kept.
    assert stored_optional("K2") == (
        "Ann Example",
        "",
        "",
        "",
        None,
        {},
        "churned",
        datetime(2025, 1, 31, tzinfo=UTC),
    )


def test_new_customer_without_optional_fields_gets_the_defaults(ingest_api):
    ingest_api.post("/api/v1/ingest/customers", {"rows": [customer_row("K3"), customer_row("K4", email=None)]})
    assert stored_optional("K3") == stored_optional("K4") == ("Ann Example", "", "", "", None, {}, "active", None)


@pytest.mark.parametrize(
    ("path", "row", "field"),
    [
        ("customers", customer_row("F1", joined_at="2099-01-01T00:00:00Z"), "joined_at"),
        ("customers", customer_row("F1", status="churned", churned_at="2099-01-01T00:00:00Z"), "churned_at"),
        ("interactions", interaction("F1", at="2099-01-01T00:00:00Z"), "occurred_at"),
        (
            "revenue",
            {"external_id": "F1", "customer_external_id": "C1", "period": "2099-01-01", "amount": "1.00"},
            "period",
        ),
    ],
)
def test_future_dated_rows_are_refused_naming_the_row_and_field(ingest_api, c1, path, row, field):
    good = {
        "customers": customer_row("G1"),
        "interactions": interaction("G1"),
        "revenue": {"external_id": "G1", "customer_external_id": "C1", "period": "2025-01-01", "amount": "1.00"},
    }[path]
    assert ingest_api.post(f"/api/v1/ingest/{path}", {"rows": [good]}).status_code == 200
    response = ingest_api.post(f"/api/v1/ingest/{path}", {"rows": [good, row]})
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "batch_rejected"
    assert list(body["fields"]) == [f"rows.1.{field}"]
    assert "is in the future" in body["fields"][f"rows.1.{field}"][0]


def test_future_tolerance_is_configurable(ingest_api, c1, settings):
    soon = (timezone.now() + timezone.timedelta(hours=5)).isoformat()
    assert ingest_api.post("/api/v1/ingest/interactions", {"rows": [interaction("T1", at=soon)]}).status_code == 200
    settings.INGEST_FUTURE_TOLERANCE_HOURS = 1
    refused = ingest_api.post("/api/v1/ingest/interactions", {"rows": [interaction("T2", at=soon)]})
    assert refused.status_code == 422
    assert list(refused.json()["fields"]) == ["rows.0.occurred_at"]
