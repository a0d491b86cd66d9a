"""Runs that cannot get stuck: claim, heartbeat, reconcile, retry, for any run model with the fields
`status` (pending, running, succeeded, failed), `progress`, `error`, `attempts`, `heartbeat_at`, `started_at`,
`finished_at` (scoring runs, segment runs, enrolments, impact reports).

- A run is claimed by a conditional UPDATE (pending -> running): a duplicate delivery of its task does nothing.
- While it runs its `heartbeat_at` moves: at every progress step, and every RUN_HEARTBEAT_INTERVAL seconds from a
  thread of the worker (one SQL statement can take minutes). A worker that dies stops the heartbeat.
- The reconciler (beat, every RUN_RECONCILE_INTERVAL seconds) requeues pending runs nobody started within
  RUN_PENDING_TIMEOUT (unless their task is still waiting in the outbox: the broker is down, the relay will
  publish it), and requeues running runs whose heartbeat is older than RUN_HEARTBEAT_TIMEOUT, at most
  RUN_MAX_ATTEMPTS times; then the run fails. The reason is written to the run's `error`.
- A manager retries a failed run (`run_retry`): back to pending, attempts reset, task queued.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, connections, models, transaction
from django.db.models import F
from django.utils import timezone

from core import outbox
from core.errors import Conflict
from core.models import OutboxMessage

logger = logging.getLogger("premier.runs")

PENDING, RUNNING, SUCCEEDED, FAILED = "pending", "running", "succeeded", "failed"
RETRY_DESCRIPTION = (
    "Only a failed run can be retried: it goes back to `pending` with its attempts and error cleared, and its "
    "task is queued. Answers 202 with the run."
)
RETRY_ERRORS = {404: "`not_found`: no such run.", 409: "`run_not_failed`: only a failed run can be retried."}


def _setting(name: str, default: float) -> float:
    return float(getattr(settings, name, default))


def run_claim(
    model: type[models.Model], pk: int, *, progress: int, statuses: tuple[str, ...] = (PENDING,), **extra: Any
) -> bool:
    """pending -> running by one conditional UPDATE: True for the one delivery that won the run."""
    now = timezone.now()
    return bool(
        model.objects.filter(pk=pk, status__in=statuses).update(
            status=RUNNING, started_at=now, heartbeat_at=now, progress=progress, finished_at=None, **extra
        )
    )


def run_progress(model: type[models.Model], pk: int, progress: int, **extra: Any) -> None:
    """Record progress (and beat the heart) of a running run."""
    model.objects.filter(pk=pk).update(progress=progress, heartbeat_at=timezone.now(), **extra)


class heartbeat:  # noqa: N801 - used as a context manager: `with heartbeat(ScoringRun, run.pk):`
    """Beat `heartbeat_at` of a running run every RUN_HEARTBEAT_INTERVAL seconds from a thread while the block
    runs (a real worker only: in eager mode the progress steps beat). The thread uses its own connection."""

    def __init__(self, model: type[models.Model], pk: int):
        self.model, self.pk = model, pk
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _beat(self) -> None:
        interval = _setting("RUN_HEARTBEAT_INTERVAL", 15)
        try:
            while not self._stop.wait(interval):
                try:
                    self.model.objects.filter(pk=self.pk, status=RUNNING).update(heartbeat_at=timezone.now())
                except Exception:  # a locked row or a dropped connection: try again at the next beat
                    logger.warning("Heartbeat of %s %s failed", self.model.__name__, self.pk, exc_info=True)
        finally:
            connections.close_all()

    def __enter__(self) -> heartbeat:
        from celery import current_app

        if not current_app.conf.task_always_eager and _setting("RUN_HEARTBEAT_INTERVAL", 15) > 0:
            self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{self.pk}", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def step_delay() -> None:
    """RUN_STEP_DELAY_SECONDS (default 0) between the steps of a run: for fault drills (kill a worker mid-run)."""
    delay = _setting("RUN_STEP_DELAY_SECONDS", 0)
    if delay > 0:
        import time

        time.sleep(delay)


def _task_waiting_in_outbox(task_name: str, pk: int) -> bool:
    return OutboxMessage.objects.filter(task_name=task_name, args=[pk], published_at__isnull=True).exists()


def runs_reconcile(
    model: type[models.Model],
    *,
    task_name: str,
    now: datetime | None = None,
    pending_timeout: float | None = None,
    heartbeat_timeout: float | None = None,
    max_attempts: int | None = None,
) -> dict[str, list[int]]:
    """Settle the runs of `model` that are stuck: {"requeued": [...], "failed": [...]}."""
    now = now or timezone.now()
    pending_timeout = _setting("RUN_PENDING_TIMEOUT", 300) if pending_timeout is None else pending_timeout
    heartbeat_timeout = _setting("RUN_HEARTBEAT_TIMEOUT", 600) if heartbeat_timeout is None else heartbeat_timeout
    max_attempts = int(_setting("RUN_MAX_ATTEMPTS", 3) if max_attempts is None else max_attempts)
    result: dict[str, list[int]] = {"requeued": [], "failed": []}
    stale_pending = models.Q(status=PENDING, heartbeat_at__lt=now - timedelta(seconds=pending_timeout))
    stale_running = models.Q(status=RUNNING, heartbeat_at__lt=now - timedelta(seconds=heartbeat_timeout))
    with transaction.atomic():
        candidates = model.objects.filter(stale_pending | stale_running).order_by("pk")
        if connection.features.has_select_for_update_skip_locked:
            candidates = candidates.select_for_update(skip_locked=True)  # rows a live run holds are not stuck
        for run in candidates.only("pk", "status", "attempts", "heartbeat_at"):
            since = run.heartbeat_at.isoformat(timespec="seconds")
            if run.status == PENDING:
                if _task_waiting_in_outbox(task_name, run.pk):
                    continue  # the broker is down: the outbox relay publishes it when it is back
                reason = f"not started by any worker since {since}"
            else:
                reason = f"the worker stopped (no heartbeat since {since})"
            attempt = run.attempts + 1
            if attempt > max_attempts:
                model.objects.filter(pk=run.pk, status=run.status).update(
                    status=FAILED,
                    error=f"{reason}; gave up after {max_attempts} requeue(s). Retry it when the cause is fixed.",
                    finished_at=now,
                )
                result["failed"].append(run.pk)
                logger.warning("%s %s failed by the reconciler: %s", model.__name__, run.pk, reason)
                continue
            model.objects.filter(pk=run.pk, status=run.status).update(
                status=PENDING,
                attempts=F("attempts") + 1,
                heartbeat_at=now,
                error=f"{reason}; requeued (attempt {attempt} of {max_attempts}).",
            )
            outbox.enqueue(task_name, run.pk)
            result["requeued"].append(run.pk)
            logger.warning("%s %s requeued by the reconciler: %s", model.__name__, run.pk, reason)
    return result


@transaction.atomic
def run_retry(model: type[models.Model], pk: int, *, task_name: str, **reset: Any) -> models.Model:
    """A failed run goes back to pending (attempts and error cleared) and its task is queued; 409 otherwise."""
    retried = model.objects.filter(pk=pk, status=FAILED).update(
        status=PENDING,
        progress=0,
        error="",
        attempts=0,
        heartbeat_at=timezone.now(),
        started_at=None,
        finished_at=None,
        **reset,
    )
    run = model.objects.get(pk=pk)
    if not retried:
        raise Conflict(
            f"Only a failed run can be retried; this one is {run.status}.",
            code="run_not_failed",
            fields={"status": [run.status]},
        )
    outbox.enqueue(task_name, pk)
    return run
