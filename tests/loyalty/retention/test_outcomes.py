from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command

from loyalty.ingestion.services.churn import customers_churned
from loyalty.models import Customer, RetentionOutcome
from loyalty.retention.services.outcomes import outcomes_derive_for_churned
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db

OBSERVED = "2026-04-01T00:00:00Z"


@pytest.fixture
def member():
    return MembershipFactory()


@pytest.fixture
def control_member(member):
    return MembershipFactory(control=True, programme=member.programme)


def test_ingest_batch_records_outcomes_for_both_groups(ingest_api, member, control_member):
    response = ingest_api.post(
        "ingest/outcomes",
        {
            "outcomes": [
                {"external_id": "o-1", "membership_id": member.pk, "observed_at": OBSERVED, "outcome": "retained"},
                {
                    "external_id": "o-2",
                    "programme_id": control_member.programme_id,
                    "customer_external_id": control_member.customer.external_id,
                    "observed_at": OBSERVED,
                    "outcome": "churned",
                    "revenue_change": "-12.50",
                    "intends_to_stay": False,
                },
            ]
        },
    )
    assert response.status_code == 201, response.content
    body = response.json()
    first, second = RetentionOutcome.objects.order_by("id")
    assert body == {"received": 2, "created": 2, "unchanged": 0, "ids": [first.pk, second.pk]}
    assert (first.membership_id, first.outcome, first.source) == (member.pk, "retained", "ingest")
    assert (second.membership_id, second.outcome, str(second.revenue_change), second.intends_to_stay) == (
        control_member.pk,
        "churned",
        "-12.50",
        False,
    )


def test_ingest_batch_is_all_or_nothing_and_names_every_bad_row(ingest_api, member):
    response = ingest_api.post(
        "ingest/outcomes",
        {
            "outcomes": [
                {"membership_id": member.pk, "observed_at": OBSERVED, "outcome": "retained"},
                {"membership_id": 999999, "observed_at": OBSERVED, "outcome": "retained"},
                {"membership_id": member.pk, "observed_at": "2025-01-01T00:00:00Z", "outcome": "churned"},
                {"membership_id": member.pk, "observed_at": "2099-01-01T00:00:00Z", "outcome": "churned"},
                {"observed_at": OBSERVED, "outcome": "churned"},
            ]
        },
    )
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "outcome_rows_invalid"
    assert body["fields"] == {
        "outcomes.1.membership_id": ["Unknown membership 999999."],
        "outcomes.2.observed_at": ["Lies before the membership's enrolment."],
        "outcomes.3.observed_at": ["Lies in the future."],
        "outcomes.4.membership_id": ["Give membership_id, or programme_id and customer_external_id."],
    }
    assert body["detail"] == "4 of 5 rows are not valid; nothing was recorded."
    assert RetentionOutcome.objects.count() == 0


def test_ingest_schema_errors_name_the_row(ingest_api, member):
    response = ingest_api.post(
        "ingest/outcomes", {"outcomes": [{"membership_id": member.pk, "observed_at": OBSERVED, "outcome": "gone"}]}
    )
    assert response.status_code == 422
    assert list(response.json()["fields"]) == ["outcomes.0.outcome"]
    assert RetentionOutcome.objects.count() == 0


def test_ingest_idempotency_key_replays_and_resent_rows_are_unchanged(ingest_api, member):
    payload = {
        "outcomes": [{"external_id": "x1", "membership_id": member.pk, "observed_at": OBSERVED, "outcome": "retained"}]
    }
    first = ingest_api.post("ingest/outcomes", payload, headers={"Idempotency-Key": "batch-1"})
    retry = ingest_api.post("ingest/outcomes", payload, headers={"Idempotency-Key": "batch-1"})
    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    resent = ingest_api.post("ingest/outcomes", payload)
    assert resent.status_code == 201
    assert resent.json() == {"received": 1, "created": 0, "unchanged": 1, "ids": first.json()["ids"]}
    assert RetentionOutcome.objects.count() == 1
    changed = {"outcomes": [{**payload["outcomes"][0], "outcome": "churned"}]}
    refused = ingest_api.post("ingest/outcomes", changed)
    assert refused.status_code == 422
    assert refused.json()["fields"] == {
        "outcomes.0.external_id": ["Already recorded with other values; send a correction that supersedes it."]
    }
    assert RetentionOutcome.objects.get().outcome == "retained"


def test_correction_supersedes_and_history_stays(ingest_api, member):
    ingest_api.post(
        "ingest/outcomes",
        {"outcomes": [{"external_id": "a", "membership_id": member.pk, "observed_at": OBSERVED, "outcome": "churned"}]},
    )
    fix = {
        "external_id": "b",
        "membership_id": member.pk,
        "observed_at": OBSERVED,
        "outcome": "retained",
        "supersedes_external_id": "a",
    }
    assert ingest_api.post("ingest/outcomes", {"outcomes": [fix]}).status_code == 201
    old, new = RetentionOutcome.objects.order_by("id")
    assert new.supersedes_id == old.pk and old.outcome == "churned"
    # The same row cannot be superseded twice; correct the latest instead.
    again = ingest_api.post("ingest/outcomes", {"outcomes": [{**fix, "external_id": "c"}]})
    assert again.status_code == 422
    assert again.json()["fields"] == {
        "outcomes.0.supersedes_id": ["That outcome was already superseded; correct the latest one."]
    }
    other = MembershipFactory(programme=member.programme)
    cross = ingest_api.post(
        "ingest/outcomes",
        {"outcomes": [{**fix, "external_id": "d", "membership_id": other.pk, "supersedes_external_id": "b"}]},
    )
    assert cross.json()["fields"] == {
        "outcomes.0.supersedes_external_id": ["The superseded outcome belongs to another membership."]
    }
    assert RetentionOutcome.objects.count() == 2


def test_ingest_needs_an_ingest_key(manager_api, anon_api, member):
    payload = {"outcomes": [{"membership_id": member.pk, "observed_at": OBSERVED, "outcome": "retained"}]}
    assert anon_api.post("ingest/outcomes", payload).status_code == 401
    assert manager_api.post("ingest/outcomes", payload).status_code == 401
    assert RetentionOutcome.objects.count() == 0


def test_manager_lists_outcomes_with_superseded_flag_in_constant_queries(
    manager_api, member, django_assert_num_queries
):
    old = RetentionOutcome.objects.create(
        membership=member, observed_at=datetime(2026, 2, 1, tzinfo=UTC), outcome="churned", source="ingest"
    )
    response = manager_api.post(
        "retention/outcomes",
        {"membership_id": member.pk, "observed_at": OBSERVED, "outcome": "retained", "supersedes_id": old.pk},
    )
    assert response.status_code == 201, response.content
    assert response.json()["source"] == "manual" and response.json()["supersedes_id"] == old.pk
    for i in range(5):
        RetentionOutcome.objects.create(
            membership=MembershipFactory(programme=member.programme),
            observed_at=datetime(2026, 3, 1, tzinfo=UTC) + timedelta(days=i),
            outcome="retained",
            source="ingest",
        )
    with django_assert_num_queries(4):  # session, user, roles, page (it ends the list: no COUNT)
        listed = manager_api.get(f"retention/outcomes?programme_id={member.programme_id}")
    assert listed.status_code == 200
    items = listed.json()["items"]
    assert listed.json()["count"] == 7
    flags = {i["id"]: i["superseded"] for i in items}
    assert flags[old.pk] is True and sum(flags.values()) == 1
    current = manager_api.get(f"retention/outcomes?membership_id={member.pk}&include_superseded=false").json()
    assert [i["outcome"] for i in current["items"]] == ["retained"]


def test_outcomes_are_for_managers_only(agent_api, member):
    assert agent_api.get("retention/outcomes").status_code == 403
    denied = agent_api.post(
        "retention/outcomes", {"membership_id": member.pk, "observed_at": OBSERVED, "outcome": "retained"}
    )
    assert denied.status_code == 403
    assert RetentionOutcome.objects.count() == 0


def _churn(customer: Customer, at: datetime) -> None:
    Customer.objects.filter(pk=customer.pk).update(status="churned", churned_at=at)


def test_churned_customers_get_a_derived_outcome_once(member, control_member):
    ended = MembershipFactory(status="ended", ended_at=datetime(2026, 2, 1, tzinfo=UTC))
    at = datetime(2026, 3, 5, tzinfo=UTC)
    for m in (member, control_member, ended):
        _churn(m.customer, at)
    ids = [member.customer_id, control_member.customer_id, ended.customer_id]
    customers_churned(customer_ids=ids)
    derived = RetentionOutcome.objects.filter(source="derived").order_by("membership_id")
    assert [(o.membership_id, o.outcome, o.observed_at) for o in derived] == [
        (member.pk, "churned", at),
        (control_member.pk, "churned", at),
    ]
    assert outcomes_derive_for_churned(customer_ids=ids) == 0  # safe to run twice
    assert RetentionOutcome.objects.count() == 2


def test_derivation_skips_members_already_reported_churned(member):
    RetentionOutcome.objects.create(
        membership=member, observed_at=datetime(2026, 3, 1, tzinfo=UTC), outcome="churned", source="ingest"
    )
    _churn(member.customer, datetime(2026, 3, 2, tzinfo=UTC))
    assert outcomes_derive_for_churned(customer_ids=[member.customer_id]) == 0


def test_import_outcomes_csv_and_jsonl(tmp_path, member, control_member):
    csv_file = tmp_path / "outcomes.csv"
    csv_file.write_text(
        "external_id,membership_id,observed_at,outcome,revenue_change\n"
        f"f1,{member.pk},{OBSERVED},retained,\n"
        f"f2,{control_member.pk},{OBSERVED},churned,-3.00\n"
    )
    call_command("import_outcomes", str(csv_file))
    assert list(RetentionOutcome.objects.values_list("external_id", "source")) == [("f1", "import"), ("f2", "import")]
    jsonl = tmp_path / "fix.jsonl"
    jsonl.write_text(
        json.dumps(
            {
                "external_id": "f3",
                "membership_id": control_member.pk,
                "observed_at": OBSERVED,
                "outcome": "retained",
                "supersedes_external_id": "f2",
            }
        )
        + "\n"
    )
    call_command("import_outcomes", str(jsonl))
    assert RetentionOutcome.objects.get(external_id="f3").supersedes.external_id == "f2"


def test_import_outcomes_is_all_or_nothing_with_line_numbers(tmp_path, member):
    csv_file = tmp_path / "bad.csv"
    csv_file.write_text(
        "membership_id,observed_at,outcome\n"
        f"{member.pk},{OBSERVED},retained\n"
        f"{member.pk},{OBSERVED},vanished\n"
        f"424242,{OBSERVED},retained\n"
    )
    with pytest.raises(CommandError) as error:
        call_command("import_outcomes", str(csv_file))
    assert "line 3: outcome:" in str(error.value)
    assert RetentionOutcome.objects.count() == 0
    csv_file.write_text(
        f"membership_id,observed_at,outcome\n{member.pk},{OBSERVED},retained\n424242,{OBSERVED},retained\n"
    )
    with pytest.raises(CommandError) as error:
        call_command("import_outcomes", str(csv_file))
    assert "line 3.membership_id: Unknown membership 424242." in str(error.value)
    assert RetentionOutcome.objects.count() == 0


def test_outcome_revenue_change_is_a_plain_two_place_decimal(manager_api, member):
    response = manager_api.post(
        "retention/outcomes",
        {"membership_id": member.pk, "observed_at": OBSERVED, "outcome": "downgraded_plan", "revenue_change": "-5.5"},
    )
    assert (response.status_code, response.json()["revenue_change"]) == (201, "-5.50")
    listed = manager_api.get(f"retention/outcomes?membership_id={member.pk}").json()
    assert [i["revenue_change"] for i in listed["items"]] == ["-5.50"]
