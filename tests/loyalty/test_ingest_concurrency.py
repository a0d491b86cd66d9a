"""Concurrent ingestion batches on PostgreSQL: rollup cells add up, nothing is lost or duplicated."""

from __future__ import annotations

import threading
from datetime import date

import pytest
from django.db import connection

from loyalty.ingestion.services.ingest import ingest_rows
from loyalty.ingestion.services.validation import rows_validate
from loyalty.models import Interaction, InteractionDayRollup, RevenueDayRollup
from tests.factories import CustomerFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

THREADS = 4
PER_BATCH = 50


def run_concurrently(batches: list[tuple[str, list[dict]]]) -> list[BaseException]:
    barrier = threading.Barrier(len(batches))
    errors: list[BaseException] = []

    def ingest(kind: str, raw: list[dict]) -> None:
        try:
            rows = rows_validate(kind, raw)
            barrier.wait()
            ingest_rows(kind=kind, rows=rows)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=ingest, args=batch) for batch in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_concurrent_interaction_batches_for_the_same_cells_add_up():
    customers = [CustomerFactory(external_id=f"C{n}") for n in range(2)]
    batches = [
        (
            "interactions",
            [
                {
                    "external_id": f"t{t}-{n}",
                    "customer_external_id": f"C{n % 2}",
                    "channel": "phone" if n % 3 else "app",
                    "occurred_at": f"2025-03-0{1 + n % 2}T10:00:00Z",
                }
                for n in range(PER_BATCH)
            ],
        )
        for t in range(THREADS)
    ]
    assert run_concurrently(batches) == []
    cells = {
        (r.customer_id, r.day, r.channel): r.count for r in InteractionDayRollup.objects.filter(customer__in=customers)
    }
    expected: dict[tuple, int] = {}
    for _, rows in batches:
        for row in rows:
            key = (
                customers[int(row["customer_external_id"][1:])].id,
                date(2025, 3, int(row["occurred_at"][8:10])),
                row["channel"],
            )
            expected[key] = expected.get(key, 0) + 1
    assert cells == expected
    assert sum(cells.values()) == THREADS * PER_BATCH


def test_concurrent_revenue_batches_for_the_same_day_add_up():
    customer = CustomerFactory(external_id="C0")
    batches = [
        (
            "revenue",
            [
                {"external_id": f"r{t}-{n}", "customer_external_id": "C0", "period": "2025-01-01", "amount": "1.25"}
                for n in range(PER_BATCH)
            ],
        )
        for t in range(THREADS)
    ]
    assert run_concurrently(batches) == []
    assert list(RevenueDayRollup.objects.filter(customer=customer).values_list("day", "amount_minor")) == [
        (date(2025, 1, 1), THREADS * PER_BATCH * 125)
    ]


def test_concurrent_corrections_moving_rows_between_the_same_cells_add_up():
    customer = CustomerFactory(external_id="C0")

    def rows(t: int, channel: str, day: int) -> list[dict]:
        return [
            {
                "external_id": f"t{t}-{n}",
                "customer_external_id": "C0",
                "channel": channel,
                "occurred_at": f"2025-03-0{day}T10:00:00Z",
            }
            for n in range(PER_BATCH)
        ]

    for t in range(THREADS):
        ingest_rows(kind="interactions", rows=rows_validate("interactions", rows(t, "phone", 1)))
    # Each thread moves its own rows from (1 March, phone) to (2 March, app), all at once.
    assert run_concurrently([("interactions", rows(t, "app", 2)) for t in range(THREADS)]) == []
    cells = list(InteractionDayRollup.objects.filter(customer=customer).values_list("day", "channel", "count"))
    assert cells == [(date(2025, 3, 2), "app", THREADS * PER_BATCH)]


def test_concurrent_corrections_of_the_same_rows_leave_rollups_equal_to_the_raw_rows():
    customer = CustomerFactory(external_id="C0")
    channels = ["phone", "app", "store", "email"]

    def rows(channel: str) -> list[dict]:
        return [
            {"external_id": f"r{n}", "customer_external_id": "C0", "channel": channel, "occurred_at": at}
            for n, at in enumerate(["2025-03-01T10:00:00Z", "2025-03-02T10:00:00Z"] * (PER_BATCH // 2))
        ]

    ingest_rows(kind="interactions", rows=rows_validate("interactions", rows("online")))
    # Every thread moves the same rows to its own channel; one of them wins each row.
    assert run_concurrently([("interactions", rows(channel)) for channel in channels[:THREADS]]) == []
    raw: dict[tuple, int] = {}
    for day, channel in Interaction.objects.filter(customer=customer).values_list("occurred_at", "channel"):
        raw[(day.date(), channel)] = raw.get((day.date(), channel), 0) + 1
    cells = dict(
        ((day, channel), count)
        for day, channel, count in InteractionDayRollup.objects.filter(customer=customer).values_list(
            "day", "channel", "count"
        )
    )
    assert cells == raw
    assert sum(cells.values()) == PER_BATCH
