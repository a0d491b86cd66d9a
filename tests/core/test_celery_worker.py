import time
from datetime import timedelta

import pytest
from celery.contrib.testing.worker import start_worker
from django.db import transaction
from django.utils import timezone

from config.celery import app
from core.models import IdempotencyRecord
from core.tasks import purge_idempotency_records
from tests.conftest import wait_until


def test_task_runs_eagerly_by_default(db):
    IdempotencyRecord.objects.create(owner="user:1", key="k", fingerprint="f", status_code=201, response_body={})
    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(days=2))
    assert purge_idempotency_records.delay().get() == 1
    assert IdempotencyRecord.objects.count() == 0


@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
def test_task_enqueued_on_commit_runs_on_a_real_worker():
    record = IdempotencyRecord.objects.create(
        owner="user:1", key="old", fingerprint="f", status_code=201, response_body={}
    )
    IdempotencyRecord.objects.filter(pk=record.pk).update(created_at=timezone.now() - timedelta(days=2))
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
        with transaction.atomic():
            purge_idempotency_records.delay_on_commit()
            time.sleep(0.5)
            # Still inside the transaction: nothing was sent yet, so the row is still there.
            assert IdempotencyRecord.objects.filter(pk=record.pk).exists()
        assert wait_until(lambda: not IdempotencyRecord.objects.filter(pk=record.pk).exists(), timeout=30)
