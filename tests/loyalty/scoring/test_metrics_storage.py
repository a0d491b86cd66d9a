"""Where a scoring run's CustomerMetrics and a segment run's members live: keyed by (run, customer); on
PostgreSQL one partition per run."""

from __future__ import annotations

import threading

import pytest
from django.db import IntegrityError, connection, transaction

from loyalty.models import CustomerMetrics, ScoringRun, SegmentMember, SegmentRun
from loyalty.segmentation.models import RunStatus
from loyalty.segmentation.services.scoring import (
    scoring_model_create,
    scoring_run_create,
    scoring_run_delete,
    scoring_run_execute,
)
from loyalty.segmentation.services.segments import (
    segment_create,
    segment_run_create,
    segment_run_execute,
    segment_runs_delete,
)
from tests.factories import CustomerFactory
from tests.loyalty.scoring.factories import AS_OF, metrics_for

pytestmark = pytest.mark.django_db


def _partitions() -> dict[str, int]:
    """Partition name -> row count."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'loyalty_customermetrics'"
        )
        names = [row[0] for row in cursor.fetchall()]
        counts = {}
        for name in names:
            cursor.execute(f"SELECT COUNT(*) FROM {name}")
            counts[name] = cursor.fetchone()[0]
    return counts


def _run(model) -> ScoringRun:
    run = scoring_run_execute(run_id=scoring_run_create(scoring_model=model, as_of=AS_OF, enqueue=False).pk)
    assert run.status == RunStatus.SUCCEEDED, run.error
    return run


def test_a_customer_has_one_metrics_row_per_run():
    customer = CustomerFactory()
    model = scoring_model_create(name="m")
    run = _run(model)
    with pytest.raises(IntegrityError), transaction.atomic():
        metrics_for(run, customer)
    assert CustomerMetrics.objects.filter(scoring_run=run, customer=customer).count() == 1


@pytest.mark.postgres
def test_each_run_writes_a_partition_of_its_own_and_orm_rows_go_to_the_default_partition():
    CustomerFactory.create_batch(3)
    model = scoring_model_create(name="m")
    first, second = _run(model), _run(model)
    handmade = ScoringRun.objects.create(scoring_model=model, as_of=AS_OF, status=RunStatus.SUCCEEDED)
    metrics_for(handmade)

    assert _partitions() == {
        "loyalty_customermetrics_default": 1,
        f"loyalty_customermetrics_r{first.pk}": 3,
        f"loyalty_customermetrics_r{second.pk}": 3,
    }
    assert CustomerMetrics.objects.filter(scoring_run=second).count() == 3
    assert CustomerMetrics.objects.count() == 7


@pytest.mark.postgres
def test_a_run_with_rows_already_in_the_default_partition_replaces_them():
    customers = CustomerFactory.create_batch(2)
    model = scoring_model_create(name="m")
    run = scoring_run_create(scoring_model=model, as_of=AS_OF, enqueue=False)
    metrics_for(run, customers[0], revenue_rank=99)

    run = scoring_run_execute(run_id=run.pk)

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert _partitions() == {"loyalty_customermetrics_default": 0, f"loyalty_customermetrics_r{run.pk}": 2}
    assert sorted(CustomerMetrics.objects.filter(scoring_run=run).values_list("revenue_rank", flat=True)) == [1, 2]


def test_deleting_a_run_deletes_its_metrics_and_keeps_the_others():
    CustomerFactory.create_batch(3)
    model = scoring_model_create(name="m")
    kept, deleted = _run(model), _run(model)

    scoring_run_delete(run=deleted)

    assert not ScoringRun.objects.filter(pk=deleted.pk).exists()
    assert CustomerMetrics.objects.filter(scoring_run_id=deleted.pk).count() == 0
    assert CustomerMetrics.objects.filter(scoring_run=kept).count() == 3
    if connection.vendor == "postgresql":
        assert _partitions() == {"loyalty_customermetrics_default": 0, f"loyalty_customermetrics_r{kept.pk}": 3}


def _execute_at_once(execute, runs) -> list:
    """Execute the runs in as many threads, released together by a barrier; the finished runs."""
    barrier = threading.Barrier(len(runs))
    finished: list = []

    def one(run_id: int) -> None:
        try:
            barrier.wait()
            finished.append(execute(run_id=run_id))
        finally:
            connection.close()

    threads = [threading.Thread(target=one, args=(run.pk,)) for run in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return finished


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_runs_each_attach_their_partition():
    """Runs of several models at once (the daily beat scores every default model): each run's metrics step
    attaches a partition; without serializing those steps two runs deadlock on the parent and the default
    partition and one of them fails."""
    CustomerFactory.create_batch(20)
    runs = [
        scoring_run_create(scoring_model=scoring_model_create(name=f"m{n}"), as_of=AS_OF, enqueue=False)
        for n in range(4)
    ]
    finished = _execute_at_once(scoring_run_execute, runs)

    assert sorted((r.status, r.error, r.customers_scored) for r in finished) == [(RunStatus.SUCCEEDED, "", 20)] * 4
    expected = {"loyalty_customermetrics_default": 0} | {f"loyalty_customermetrics_r{run.pk}": 20 for run in runs}
    # Earlier transactional tests may leave empty partitions of their own runs (the flush truncates, not drops).
    assert {name: rows for name, rows in _partitions().items() if name in expected} == expected


def _member_partitions() -> dict[str, int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'loyalty_segmentmember'"
        )
        names = [row[0] for row in cursor.fetchall()]
        counts = {}
        for name in names:
            cursor.execute(f"SELECT COUNT(*) FROM {name}")
            counts[name] = cursor.fetchone()[0]
    return counts


@pytest.mark.postgres
def test_each_segment_run_writes_a_partition_of_its_own_and_deleting_runs_drops_them():
    customers = CustomerFactory.create_batch(3)
    scoring_run = _run(scoring_model_create(name="m"))
    segment = segment_create(name="all", rule={}, top_n=2, top_by="revenue_rank")
    first, second = (
        segment_run_execute(run_id=segment_run_create(segment=segment, scoring_run=scoring_run, enqueue=False).pk)
        for _ in range(2)
    )
    handmade = SegmentRun.objects.create(segment=segment, scoring_run=scoring_run, status=RunStatus.SUCCEEDED)
    SegmentMember.objects.create(run=handmade, customer=customers[0], rank=1)

    assert (first.status, first.member_count, second.member_count) == (RunStatus.SUCCEEDED, 2, 2)
    assert _member_partitions() == {
        "loyalty_segmentmember_default": 1,
        f"loyalty_segmentmember_r{first.pk}": 2,
        f"loyalty_segmentmember_r{second.pk}": 2,
    }
    assert list(SegmentMember.objects.filter(run=second).order_by("rank").values_list("rank", flat=True)) == [1, 2]
    with pytest.raises(IntegrityError), transaction.atomic():
        SegmentMember.objects.create(run=second, customer_id=first.members.first().customer_id, rank=3)

    segment_runs_delete(run_ids=[first.pk, handmade.pk])

    assert _member_partitions() == {"loyalty_segmentmember_default": 0, f"loyalty_segmentmember_r{second.pk}": 2}
    assert list(SegmentRun.objects.values_list("id", flat=True)) == [second.pk]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_segment_runs_each_attach_their_partition():
    """The daily beat runs every segment on the same scoring run, and several workers may take them at once."""
    CustomerFactory.create_batch(10)
    scoring_run = _run(scoring_model_create(name="m"))
    runs = [
        segment_run_create(segment=segment_create(name=f"s{n}", rule={}), scoring_run=scoring_run, enqueue=False)
        for n in range(4)
    ]
    finished = _execute_at_once(segment_run_execute, runs)

    assert sorted((r.status, r.error, r.member_count) for r in finished) == [(RunStatus.SUCCEEDED, "", 10)] * 4
    expected = {f"loyalty_segmentmember_r{run.pk}": 10 for run in runs}
    assert {name: rows for name, rows in _member_partitions().items() if name in expected} == expected
