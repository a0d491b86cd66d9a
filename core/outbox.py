"""Hand work to Celery tasks by name, so that services never import their tasks (tasks import services).

`enqueue("events.tasks.booking_refund", booking.pk)` publishes the task when the surrounding transaction
commits; outside a transaction, at once. Tasks take ids and are safe to run twice."""

from __future__ import annotations

from typing import Any

from celery import current_app
from django.db import transaction


def enqueue(task_name: str, *args: Any) -> None:
    """Publish `task_name(*args)` after the current transaction commits (eager in tests, as Celery is)."""
    transaction.on_commit(lambda: _publish(task_name, args))


def _publish(task_name: str, args: tuple[Any, ...]) -> None:
    if task_name not in current_app.tasks:
        # A task registers when its module is imported. A process that has not imported it (a web process: the
        # services no longer import their tasks) would send an unknown name to the broker even in eager mode,
        # where nothing consumes it; the apps' task modules are imported (Celery's autodiscovery) first.
        current_app.loader.import_default_modules()
    current_app.signature(task_name, args=args).apply_async()
