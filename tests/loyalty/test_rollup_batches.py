"""Batches of new rows apply their rollup cells after commit (PostgreSQL): a RollupBatch recorded in the ingest
transaction, its task enqueued through the outbox; readers of the rollups apply what is still pending first."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime

import pytest
from celery.contrib.testing.worker import start_worker
from django.db import connection

from config.celery import app
from core.models import OutboxMessage
from loyalty.ingestion.services.ingest import ingest_csv_pg, ingest_rows
from loyalty.ingestion.services.validation import rows_validate
from loyalty.models import Interaction, InteractionDayRollup, RevenueDayRollup, RollupBatch, ScoringState
from loyalty.segmentation.services.rollups import (
    rollup_batch_apply,
    rollups_apply_pending,
    rollups_rebuild,
    rollups_refresh_interactions,
)
from loyalty.segmentation.services.scoring import scoring_model_create, scoring_run_create, scoring_run_execute
from loyalty.segmentation.tasks import rollups_apply_batch
from tests.conftest import wait_until
from tests.factories import CustomerFactory

DAY = date(2025, 3, 1)


def interactions(prefix: str, customers: list[str], n: int, channel: str = "phone", day: int = 1) -> list[dict]:
    return [
        {
            "external_id": f"{prefix}{i}",
            "customer_external_id": customers[i % len(customers)],
            "channel": channel,
            "occurred_at": f"2025-03-{day:02d}T{i % 24:02d}:00:00Z",
        }
        for i in range(n)
    ]


def ingest(rows: list[dict], kind: str = "interactions"):
    return ingest_rows(kind=kind, rows=rows_validate(kind, rows), checked=True)


def cells() -> dict[tuple, int]:
    return {
        (r.customer_id, r.day, r.channel): r.count
        for r in InteractionDayRollup.objects.order_by("customer_id", "day", "channel")
    }


def raw_cells() -> dict[tuple, int]:
    """The rollups recomputed from the raw rows (what they must equal)."""
    found: dict[tuple, int] = {}
    for customer_id, at, channel in Interaction.objects.values_list("customer_id", "occurred_at", "channel"):
        key = (customer_id, at.astimezone(UTC).date(), channel)
        found[key] = found.get(key, 0) + 1
    return dict(sorted(found.items()))


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_batch_of_new_rows_is_pending_until_its_task_runs_and_a_second_run_changes_nothing():
    a, b = CustomerFactory(external_id="C1"), CustomerFactory(external_id="C2")
    result = ingest(interactions("i", ["C1", "C2"], 5))
    assert (result.created, result.updated) == (5, 0)
    assert cells() == {}  # nothing applied at commit
    batch = RollupBatch.objects.get()
    ids = sorted(Interaction.objects.values_list("id", flat=True))
    assert (batch.kind, batch.rows, batch.applied_at) == ("interactions", 5, None)
    assert batch.first_id <= ids[0] and batch.last_id == ids[-1]
    assert set(Interaction.objects.values_list("ingest_batch_id", flat=True)) == {batch.pk}
    message = OutboxMessage.objects.get()
    assert (message.task_name, message.args) == ("loyalty.tasks.rollups_apply_batch", [batch.pk])

    assert rollups_apply_batch.apply(args=[batch.pk]).get() is True
    expected = {(a.id, DAY, "phone"): 3, (b.id, DAY, "phone"): 2}
    assert cells() == expected
    batch.refresh_from_db()
    assert batch.applied_at is not None
    assert rollups_apply_batch.apply(args=[batch.pk]).get() is False  # a second delivery: counted once
    assert rollup_batch_apply(batch_id=batch.pk) is False
    assert rollups_apply_pending() == 0
    assert cells() == expected


@pytest.mark.postgres
@pytest.mark.django_db
def test_the_outbox_runs_the_task_eagerly_after_commit(django_capture_on_commit_callbacks):
    a = CustomerFactory(external_id="C1")
    with django_capture_on_commit_callbacks(execute=True):
        ingest(interactions("i", ["C1"], 3))
    assert cells() == {(a.id, DAY, "phone"): 3}
    assert RollupBatch.objects.get().applied_at is not None
    assert OutboxMessage.objects.get().published_at is not None


@pytest.mark.postgres
@pytest.mark.django_db
def test_revenue_file_and_api_batches_are_applied_by_the_pending_work():
    a = CustomerFactory(external_id="C1")
    ingest([{"external_id": "r1", "customer_external_id": "C1", "period": "2025-01-01", "amount": "10.50"}], "revenue")
    file = ingest_csv_pg(
        kind="revenue",
        header=["external_id", "customer_external_id", "period", "amount"],
        body=b"r2,C1,2025-01-01,1.25\nr3,C1,2025-02-01,2\n",
    )
    assert file.created == 2
    assert RevenueDayRollup.objects.count() == 0
    assert list(RollupBatch.objects.order_by("id").values_list("kind", "rows")) == [("revenue", 1), ("revenue", 2)]
    assert rollups_apply_pending() == 2
    assert list(RevenueDayRollup.objects.order_by("day").values_list("customer_id", "day", "amount_minor")) == [
        (a.id, date(2025, 1, 1), 1175),
        (a.id, date(2025, 2, 1), 200),
    ]


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_dry_run_and_a_rejected_batch_leave_no_batch_behind():
    CustomerFactory(external_id="C1")
    ingest_rows(kind="interactions", rows=rows_validate("interactions", interactions("i", ["C1"], 2)), dry_run=True)
    assert ingest_csv_pg(kind="interactions", header=["external_id", "customer_external_id", "channel", "occurred_at"],
                         body=b"i1,C1,phone,2025-03-01T10:00:00Z\n", dry_run=True).created == 1  # fmt: skip
    assert (Interaction.objects.count(), RollupBatch.objects.count(), OutboxMessage.objects.count()) == (0, 0, 0)


@pytest.mark.postgres
@pytest.mark.django_db
def test_correcting_rows_of_a_pending_batch_applies_that_batch_first():
    a, b = CustomerFactory(external_id="C1"), CustomerFactory(external_id="C2")
    ingest(interactions("i", ["C1"], 4))  # pending
    # Two of the rows move to another customer, channel and day; the others are sent again unchanged.
    moved = interactions("i", ["C1"], 4)
    for row in moved[:2]:
        row.update(customer_external_id="C2", channel="app", occurred_at="2025-03-02T10:00:00Z")
    result = ingest(moved)
    assert (result.created, result.updated, result.unchanged) == (0, 2, 2)
    assert RollupBatch.objects.get().applied_at is not None  # applied by the correcting batch, before it subtracted
    assert cells() == {(a.id, DAY, "phone"): 2, (b.id, date(2025, 3, 2), "app"): 2} == raw_cells()


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_scoring_run_applies_pending_batches_and_their_stale_marks_first():
    a = CustomerFactory(external_id="C1")
    rollups_rebuild()
    model = scoring_model_create(name="pending")
    as_of = datetime(2025, 3, 10, 12, tzinfo=UTC)
    scoring_run_execute(run_id=scoring_run_create(scoring_model=model, as_of=as_of, enqueue=False).pk)
    assert not ScoringState.objects.filter(customer=a, stale=True).exists()
    ingest(interactions("late", ["C1"], 3))  # 1 March: days the state covers already
    assert cells() == {}
    run = scoring_run_execute(run_id=scoring_run_create(scoring_model=model, as_of=as_of, enqueue=False).pk)
    assert run.status == "succeeded"
    assert RollupBatch.objects.get().applied_at is not None
    assert cells() == {(a.id, DAY, "phone"): 3}
    assert run.timings["state_recomputed"] == 1  # the stale mark of the late rows reached the run


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_refresh_and_a_rebuild_count_the_rows_of_pending_batches_once():
    a = CustomerFactory(external_id="C1")
    ingest(interactions("i", ["C1"], 3))
    rollups_refresh_interactions(customer_ids=[a.id], date_from=DAY, date_to=DAY)
    assert cells() == {(a.id, DAY, "phone"): 3}
    assert rollups_apply_pending() == 0
    ingest(interactions("j", ["C1"], 2, channel="app"))
    rollups_rebuild()
    assert rollups_apply_pending() == 0
    assert cells() == {(a.id, DAY, "app"): 2, (a.id, DAY, "phone"): 3}


@pytest.mark.django_db
def test_elsewhere_rollups_are_current_at_commit(settings):
    """SQLite (and any database but PostgreSQL): no batch is deferred."""
    if settings.IS_POSTGRES:
        pytest.skip("PostgreSQL defers batches of new rows")
    a = CustomerFactory(external_id="C1")
    ingest(interactions("i", ["C1"], 3))
    assert cells() == {(a.id, DAY, "phone"): 3}
    assert (RollupBatch.objects.count(), rollups_apply_pending()) == (0, 0)


def _threads(targets) -> list[BaseException]:
    barrier = threading.Barrier(len(targets))
    errors: list[BaseException] = []

    def run(target) -> None:
        try:
            barrier.wait()
            target()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(target,)) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_batches_tasks_readers_and_corrections_leave_rollups_equal_to_the_raw_rows():
    """Threads at once: new batches (each applying its own task after commit, eagerly), a correction of rows of
    an earlier batch that is still pending, and readers applying whatever is pending."""
    customers = [CustomerFactory(external_id=f"C{n}").external_id for n in range(3)]
    # An earlier batch whose task has not run yet (its publication is held back).
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("core.outbox._publish_committed", lambda message: False)
        ingest(interactions("old", customers, 30))
    assert RollupBatch.objects.filter(applied_at__isnull=True).count() == 1
    correction = interactions("old", customers, 30, channel="store", day=4)
    targets = [lambda t=t: ingest(interactions(f"t{t}-", customers, 40, day=1 + t % 3)) for t in range(3)]
    targets += [lambda: ingest(correction), rollups_apply_pending, rollups_apply_pending]
    assert _threads(targets) == []
    rollups_apply_pending()
    assert RollupBatch.objects.filter(applied_at__isnull=True).count() == 0
    assert cells() == raw_cells()
    assert sum(cells().values()) == 30 + 3 * 40


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_same_batch_applied_by_two_threads_at_once_is_counted_once():
    a = CustomerFactory(external_id="C1")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("core.outbox._publish_committed", lambda message: False)
        ingest(interactions("i", ["C1"], 10))
    batch = RollupBatch.objects.get()
    assert _threads([lambda: rollup_batch_apply(batch_id=batch.pk)] * 2 + [rollups_apply_pending]) == []
    assert cells() == {(a.id, DAY, "phone"): 10}


@pytest.mark.postgres
@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_gives_the_same_rollups_as_the_eager_run():
    customers = [CustomerFactory(external_id=f"C{n}").external_id for n in range(2)]
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
        ingest(interactions("w", customers, 20))
        batch = RollupBatch.objects.get()
        assert wait_until(lambda: RollupBatch.objects.get(pk=batch.pk).applied_at is not None, timeout=30)
    by_worker = cells()
    # The same rows again, applied eagerly in this process: the same cells.
    Interaction.objects.all().delete()
    InteractionDayRollup.objects.all().delete()
    app.conf.task_always_eager = True
    try:
        ingest(interactions("w", customers, 20))
    finally:
        app.conf.task_always_eager = False
    assert cells() == by_worker == raw_cells()


@pytest.mark.django_db
def test_ids_and_kinds_that_copy_must_escape_are_stored_as_sent():
    CustomerFactory(external_id="C1")
    rows = interactions("i", ["C1"], 2)
    rows[0].update(external_id="tab\there", kind="back\\slash\nnew\rline")
    rows[1].update(external_id="plain")
    assert ingest(rows).created == 2
    assert list(Interaction.objects.order_by("external_id").values_list("external_id", "kind")) == [
        ("plain", ""),
        ("tab\there", "back\\slash\nnew\rline"),
    ]
