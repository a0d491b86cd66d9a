from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from loyalty.ingestion.services.interactions import interaction_record
from loyalty.models import Interaction, InteractionDayRollup, RevenueDayRollup, RevenueEntry
from loyalty.segmentation.services.rollups import rollups_rebuild, rollups_refresh_interactions, rollups_refresh_revenue
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db
DAY = date(2026, 6, 1)


def _cells() -> set[tuple]:
    return set(InteractionDayRollup.objects.values_list("customer_id", "day", "channel", "count"))


def test_interaction_record_counts_in_the_rollup_of_its_day_once():
    customer = CustomerFactory()
    at = datetime(2026, 6, 1, 23, 30, tzinfo=UTC)
    interaction_record(customer=customer, channel="concierge", kind="request", occurred_at=at, external_id="c-1")
    interaction_record(customer=customer, channel="concierge", kind="request", occurred_at=at, external_id="c-1")
    interaction_record(customer=customer, channel="concierge", kind="reply", occurred_at=at, external_id="c-2")
    assert _cells() == {(customer.id, DAY, "concierge", 2)}
    # A cell that ingestion filled already is added to.
    Interaction.objects.create(customer=customer, channel="event", occurred_at=at, external_id="feed-1")
    rollups_refresh_interactions(customer_ids=[customer.id], date_from=DAY, date_to=DAY)
    interaction_record(customer=customer, channel="event", kind="attended", occurred_at=at, external_id="e-1")
    assert _cells() == {(customer.id, DAY, "concierge", 2), (customer.id, DAY, "event", 2)}


def test_refresh_recomputes_cells_from_raw_rows_so_corrections_stay_right():
    a, b = CustomerFactory(), CustomerFactory()
    row = Interaction.objects.create(
        customer=a, channel="app", occurred_at=datetime(2026, 6, 1, 10, tzinfo=UTC), external_id="i1"
    )
    Interaction.objects.create(
        customer=b, channel="app", occurred_at=datetime(2026, 6, 2, tzinfo=UTC), external_id="i2"
    )
    rollups_refresh_interactions(customer_ids=[a.id, b.id], date_from=DAY, date_to=date(2026, 6, 2))
    assert _cells() == {(a.id, DAY, "app", 1), (b.id, date(2026, 6, 2), "app", 1)}
    # A re-sent row moves to another channel: refreshing that customer/day rewrites the cell.
    row.channel = "store"
    row.save()
    rollups_refresh_interactions(customer_ids=[a.id], date_from=DAY, date_to=DAY)
    assert _cells() == {(a.id, DAY, "store", 1), (b.id, date(2026, 6, 2), "app", 1)}

    RevenueEntry.objects.create(customer=a, period=DAY, amount=Decimal("10.05"), external_id="r1")
    RevenueEntry.objects.create(customer=a, period=DAY, amount=Decimal("0.10"), external_id="r2")
    rollups_refresh_revenue(customer_ids=None, date_from=DAY, date_to=DAY)
    assert list(RevenueDayRollup.objects.values_list("customer_id", "day", "amount_minor")) == [(a.id, DAY, 1015)]

    InteractionDayRollup.objects.all().delete()
    RevenueDayRollup.objects.all().delete()
    assert rollups_rebuild() == {"interaction_rows": 2, "revenue_rows": 1}
    assert _cells() == {(a.id, DAY, "store", 1), (b.id, date(2026, 6, 2), "app", 1)}
