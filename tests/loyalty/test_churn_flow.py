"""End to end: a CRM batch that marks customers churned ends their memberships (both groups) and records a
derived churn outcome for each, once."""

from datetime import UTC, datetime

import pytest

from loyalty.models import Membership, RetentionOutcome
from tests.factories import CustomerFactory, MembershipFactory, ProgrammeFactory

pytestmark = pytest.mark.django_db


def test_churn_in_a_crm_batch_ends_memberships_and_records_outcomes(ingest_api):
    programme = ProgrammeFactory()
    member = MembershipFactory(programme=programme, customer=CustomerFactory(external_id="T1"))
    held_out = MembershipFactory(programme=programme, customer=CustomerFactory(external_id="K1"), control=True)
    stays = MembershipFactory(programme=programme, customer=CustomerFactory(external_id="S1"))
    rows = [
        {
            "external_id": ext,
            "name": "Someone",
            "joined_at": "2020-01-01T00:00:00Z",
            "status": "churned",
            "churned_at": "2026-05-01T00:00:00Z",
        }
        for ext in ("T1", "K1")
    ]

    for _ in range(2):  # a retried batch is not a second churn
        assert ingest_api.post("ingest/customers", {"rows": rows}).status_code == 200

    statuses = dict(Membership.objects.values_list("id", "status"))
    assert statuses == {member.pk: "ended", held_out.pk: "ended", stays.pk: "active"}
    outcomes = list(
        RetentionOutcome.objects.order_by("membership_id").values_list("membership_id", "outcome", "source")
    )
    assert outcomes == [(member.pk, "churned", "derived"), (held_out.pk, "churned", "derived")]
    assert RetentionOutcome.objects.get(membership=member).observed_at == datetime(2026, 5, 1, tzinfo=UTC)


def test_a_churn_feed_processed_as_of_a_past_date_ends_memberships_then():
    """`ingest_rows(now=...)`: a feed replayed for a past month (the demo's history) ends the memberships and
    records the outcomes as of that date, not today."""
    from loyalty.ingestion.services.ingest import ingest_rows
    from loyalty.ingestion.services.validation import rows_validate

    member = MembershipFactory(customer=CustomerFactory(external_id="P1"), enrolled_at=datetime(2025, 1, 1, tzinfo=UTC))
    row = {
        "external_id": "P1",
        "name": "Someone",
        "joined_at": "2020-01-01T00:00:00Z",
        "status": "churned",
        "churned_at": "2025-03-10T08:00:00Z",
    }
    sent = datetime(2025, 4, 1, 6, tzinfo=UTC)
    ingest_rows(kind="customers", rows=rows_validate("customers", [row]), now=sent)
    member.refresh_from_db()
    assert (member.status, member.ended_at) == ("ended", sent)
    outcome = RetentionOutcome.objects.get(membership=member)
    assert (outcome.observed_at, outcome.recorded_at) == (datetime(2025, 3, 10, 8, tzinfo=UTC), sent)
    assert list(member.tier_changes.values_list("reason", "at")) == [("ended", sent)]
