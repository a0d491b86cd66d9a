"""A real Celery worker (a subprocess, prefork, against the test's broker and PostgreSQL database) is killed with
SIGKILL, main process and children, in the middle of a scoring run, like a crashed container. The run's heartbeat
stops; the reconciler requeues it with the reason, and the next worker brings it to `succeeded`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

from config.celery import app
from core.runs import runs_reconcile
from loyalty.models import ScoringRun
from loyalty.segmentation.services.scoring import scoring_model_default, scoring_run_create, scoring_run_delete
from tests.factories import CustomerFactory

ROOT = Path(__file__).resolve().parents[2]
TASK = "loyalty.tasks.scoring_run_task"
HEARTBEAT_TIMEOUT = 4.0  # seconds without a beat before the reconciler calls a run stale (beats every second)


def _worker(name: str, log: Path, **env: str) -> subprocess.Popen:
    db = connection.settings_dict
    url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": url,  # the test database
        "CELERY_BROKER_URL": app.conf.broker_url,
        "RUN_HEARTBEAT_INTERVAL": "1",
        **env,
    }
    return subprocess.Popen(  # noqa: S603 - a Celery worker of this project
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool=prefork",
            "--concurrency=1",
            "--loglevel=WARNING",
            "-n",
            f"{name}-{os.getpid()}@%h",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=ROOT,
        env=environment,
        start_new_session=True,  # its own process group: killpg reaches the main process and its children
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
    )


def _stop(worker: subprocess.Popen, sig: int) -> None:
    if worker.poll() is None:
        os.killpg(worker.pid, sig)
        worker.wait(timeout=60)


def _wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


@pytest.fixture
def drop_runs():
    """A transactional test's scoring runs leave metrics partitions (tables) that the flush keeps: drop them."""
    yield
    for run in ScoringRun.objects.all():
        scoring_run_delete(run=run)


@pytest.mark.postgres
@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("drop_runs")
def test_a_worker_killed_mid_run_is_noticed_and_the_run_is_settled(tmp_path):
    log = tmp_path / "worker.log"
    CustomerFactory.create_batch(20)
    run = scoring_run_create(scoring_model=scoring_model_default())  # published to the broker after commit

    # A worker that pauses 60 s between the run's steps (RUN_STEP_DELAY_SECONDS, for fault drills).
    doomed = _worker("doomed", log, RUN_STEP_DELAY_SECONDS="60")
    try:
        assert _wait_for(lambda: ScoringRun.objects.get(pk=run.pk).progress == 50, timeout=90), log.read_text()
        beat = ScoringRun.objects.get(pk=run.pk).heartbeat_at
        assert _wait_for(lambda: ScoringRun.objects.get(pk=run.pk).heartbeat_at > beat, timeout=10)  # alive
    finally:
        _stop(doomed, signal.SIGKILL)
    killed_at = time.monotonic()
    run.refresh_from_db()
    assert (run.status, run.progress) == ("running", 50)

    # The reconciler (beat) leaves a live heartbeat alone, then requeues the run once the heartbeat is stale.
    settled = None
    while time.monotonic() - killed_at < HEARTBEAT_TIMEOUT + 10:
        result = runs_reconcile(ScoringRun, task_name=TASK, heartbeat_timeout=HEARTBEAT_TIMEOUT, max_attempts=2)
        if result["requeued"]:
            settled = time.monotonic() - killed_at
            break
        time.sleep(0.5)
    assert result == {"requeued": [run.pk], "failed": []}
    assert HEARTBEAT_TIMEOUT - 2 < settled < HEARTBEAT_TIMEOUT + 3, settled
    run.refresh_from_db()
    assert (run.status, run.attempts) == ("pending", 1)
    assert run.error.startswith("the worker stopped (no heartbeat since ")
    assert run.error.endswith("; requeued (attempt 1 of 2).")

    # A new worker takes the requeued run to the end.
    healthy = _worker("healthy", log)
    try:
        assert _wait_for(lambda: ScoringRun.objects.get(pk=run.pk).status == "succeeded", timeout=90), log.read_text()
    finally:
        _stop(healthy, signal.SIGTERM)
    run.refresh_from_db()
    assert (run.status, run.progress, run.customers_scored, run.attempts) == ("succeeded", 100, 20, 1)
    assert run.error.startswith("the worker stopped (no heartbeat since ")
