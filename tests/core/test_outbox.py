"""core.outbox: the task outbox. enqueue in a fresh process (as in a web process: services publish their tasks by
name and never import them; each app registers its tasks when Django starts); the message recorded in the
deciding transaction; the relay; the purge; a broker that is down during the request."""

import json
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from celery.contrib.testing.worker import start_worker
from django.db import transaction
from django.utils import timezone

from config.celery import app
from core import outbox
from core.models import IdempotencyRecord, OutboxMessage
from core.outbox import enqueue, outbox_purge, outbox_relay
from loyalty.models import ScoringRun
from loyalty.segmentation.services.scoring import scoring_model_default, scoring_run_create, scoring_run_delete
from tests.conftest import api_as, broker_at, wait_until
from tests.factories import CustomerFactory, UserFactory

FRESH_PROCESS = """
import json, sys
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)  # the outbox records the message in the database
from unittest import mock
from celery import Task, current_app
from core.outbox import enqueue

current_app.conf.task_always_eager = True
ran = []
with (
    mock.patch.object(Task, "apply", lambda self, args=None, kwargs=None, **options: ran.append([self.name, args])),
    mock.patch.object(type(current_app._get_current_object()), "send_task", side_effect=AssertionError("broker")),
):
    enqueue("events.tasks.booking_notify", 7, "waitlist_hold")
print(json.dumps({"ran": ran}))
"""


def test_enqueue_in_a_fresh_process_runs_the_task_eagerly_not_through_the_broker(tmp_path):
    # Outside a transaction the task is published at once; the process gets a throwaway SQLite database.
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "SQLITE_PATH", "CELERY_BROKER_URL"}}
    env.update(DJANGO_SETTINGS_MODULE="config.settings", PREMIER_VAR_DIR=str(tmp_path))
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(  # noqa: S603 - runs this file's own fixed script
        [sys.executable, "-c", FRESH_PROCESS], cwd=root, env=env, capture_output=True, text=True, check=True
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"ran": [["events.tasks.booking_notify", [7, "waitlist_hold"]]]}


# --- the transactional outbox ----------------------------------------------------------------------------------


TASK = "loyalty.tasks.scoring_run_task"
CLOSED_BROKER = "redis://127.0.0.1:18129/0"  # nothing listens there


@pytest.mark.django_db
def test_the_message_is_recorded_in_the_deciding_transaction_and_published_after_commit(
    django_capture_on_commit_callbacks,
):
    CustomerFactory.create_batch(2)
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        run = scoring_run_create(scoring_model=scoring_model_default())
        message = OutboxMessage.objects.get()
        assert (message.task_name, message.args, message.published_at) == (TASK, [run.pk], None)
    message.refresh_from_db()
    assert message.published_at is not None and message.attempts == 0
    run.refresh_from_db()
    assert (run.status, run.customers_scored) == ("succeeded", 2)


@pytest.mark.django_db
def test_a_rolled_back_transaction_records_and_publishes_nothing(django_capture_on_commit_callbacks):
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        scoring_run_create(scoring_model=scoring_model_default())
        raise RuntimeError("the deciding transaction fails")
    assert (callbacks, OutboxMessage.objects.count(), ScoringRun.objects.count()) == ([], 0, 0)


@pytest.mark.django_db
def test_an_unknown_task_name_fails_at_the_decision():
    with pytest.raises(KeyError):
        enqueue("loyalty.tasks.no_such_task", 1)
    assert OutboxMessage.objects.count() == 0


@pytest.mark.django_db
def test_the_relay_publishes_what_was_not_published_after_commit_once():
    CustomerFactory()
    run = scoring_run_create(scoring_model=scoring_model_default())  # its after-commit attempt never ran
    assert OutboxMessage.objects.get().published_at is None
    assert outbox_relay() == 0  # younger than OUTBOX_RELAY_MIN_AGE: left to its after-commit attempt
    assert outbox_relay(min_age_seconds=0) == 1
    run.refresh_from_db()
    assert (run.status, run.customers_scored) == ("succeeded", 1)
    assert OutboxMessage.objects.get().published_at is not None
    assert outbox_relay(min_age_seconds=0) == 0


@pytest.mark.django_db
def test_published_messages_are_purged_after_the_retention_and_unpublished_ones_kept(settings):
    settings.OUTBOX_RETENTION_HOURS = 72
    now = timezone.now()
    old = OutboxMessage.objects.create(task_name=TASK, args=[1], published_at=now - timedelta(hours=73))
    recent = OutboxMessage.objects.create(task_name=TASK, args=[2], published_at=now - timedelta(hours=71))
    waiting = OutboxMessage.objects.create(task_name=TASK, args=[3])
    OutboxMessage.objects.filter(pk=waiting.pk).update(created_at=now - timedelta(days=30))
    assert outbox_purge() == 1
    assert set(OutboxMessage.objects.values_list("pk", flat=True)) == {recent.pk, waiting.pk}
    assert not OutboxMessage.objects.filter(pk=old.pk).exists()


@pytest.fixture
def drop_runs():
    """A transactional test's scoring runs leave metrics partitions (tables) that the flush keeps: drop them."""
    yield
    for run in ScoringRun.objects.all():
        scoring_run_delete(run=run)


@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("drop_runs")
def test_broker_down_the_request_answers_its_status_and_the_relay_publishes_when_it_is_back(monkeypatch):
    CustomerFactory.create_batch(3)
    manager = api_as(UserFactory(roles=["programme_manager"]))
    outbox._Backoff.reset()
    with broker_at(CLOSED_BROKER):
        started = time.monotonic()
        response = manager.post("scoring/runs", {"as_of": "2026-06-30T00:00:00Z"})
        elapsed = time.monotonic() - started
    assert response.status_code == 202, response.content
    assert response.json()["status"] == "pending"
    assert elapsed < 3, elapsed
    run = ScoringRun.objects.get(pk=response.json()["id"])
    message = OutboxMessage.objects.get()
    assert (message.task_name, message.args, message.published_at, message.attempts) == (TASK, [run.pk], None, 1)
    assert "18129" in message.last_error and "Connection refused" in message.last_error

    # The broker is back: the relay publishes the message and a worker runs the scoring run.
    stale = IdempotencyRecord.objects.create(
        owner="user:1", key="k", fingerprint="f", status_code=201, response_body={}
    )
    IdempotencyRecord.objects.filter(pk=stale.pk).update(created_at=timezone.now() - timedelta(days=2))
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
        assert outbox_relay(min_age_seconds=0) == 1
        assert wait_until(lambda: ScoringRun.objects.get(pk=run.pk).status == "succeeded")
        run.refresh_from_db()
        first = (run.status, run.customers_scored, run.started_at, run.finished_at)
        assert first[:2] == ("succeeded", 3)
        assert outbox_relay(min_age_seconds=0) == 0
        # A duplicate publication (a relay that died before recording it) changes nothing: then a sentinel
        # task behind it on the same queue shows that the worker has consumed it.
        app.send_task(TASK, args=[run.pk])
        app.send_task("core.tasks.purge_idempotency_records")
        assert wait_until(lambda: not IdempotencyRecord.objects.filter(pk=stale.pk).exists())
    run.refresh_from_db()
    assert (run.status, run.customers_scored, run.started_at, run.finished_at) == first
    assert OutboxMessage.objects.get().published_at is not None


def test_embedded_broker_purge_deletes_delivered_messages_and_keeps_waiting_ones(tmp_path):
    """kombu's SQLAlchemy transport keeps every delivered message (visible = false); the hourly purge removes
    them, and a message not yet delivered is still delivered afterwards."""
    from kombu import Connection

    url = f"sqla+sqlite:///{tmp_path / 'broker.sqlite3'}"
    assert outbox.embedded_broker_purge(url) == 0  # no broker file yet: nothing to do
    with Connection(url) as conn:
        queue = conn.SimpleQueue("purge-test")
        for n in range(3):
            queue.put({"n": n})
        for _ in range(2):
            queue.get(timeout=5).ack()
        assert outbox.embedded_broker_purge(url) == 2
        assert outbox.embedded_broker_purge(url) == 0
        assert queue.get(timeout=5).payload == {"n": 2}
        queue.close()
    assert outbox.embedded_broker_purge("redis://127.0.0.1:6379/0") == 0


def test_embedded_broker_purge_is_scheduled_only_for_the_embedded_broker():
    from django.conf import settings

    scheduled = "embedded-broker-purge" in settings.CELERY_BEAT_SCHEDULE
    assert scheduled == settings.EMBEDDED_BROKER


@pytest.mark.broker
@pytest.mark.django_db
def test_the_after_commit_publication_reaches_the_embedded_broker(
    tmp_path, monkeypatch, django_capture_on_commit_callbacks
):
    """`make run`'s broker (kombu's SQLAlchemy transport) hands its transport options to SQLAlchemy, which
    refuses Redis's socket timeouts: the publication right after commit must not send them there."""
    from kombu import Connection

    url = f"sqla+sqlite:///{tmp_path / 'broker.sqlite3'}"
    # The embedded broker's own options (config/settings.py), also when this suite runs against Redis.
    monkeypatch.setitem(app.conf, "broker_transport_options", {"connect_args": {"timeout": 30}})
    outbox._Backoff.reset()
    with broker_at(url):
        with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
            message = enqueue("core.tasks.purge_idempotency_records")
        message.refresh_from_db()
        assert (message.attempts, message.last_error) == (0, "")
        assert message.published_at is not None
        with Connection(url) as conn:
            queue = conn.SimpleQueue("celery")
            delivered = queue.get(timeout=5)
            assert delivered.headers["id"] == f"outbox-{message.pk}"
            assert delivered.headers["task"] == "core.tasks.purge_idempotency_records"
            delivered.ack()
            queue.close()
