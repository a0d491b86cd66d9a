"""Hand work to Celery tasks by name, so that services never import their tasks (tasks import services).

`enqueue("events.tasks.booking_refund", booking.pk)` publishes the task when the surrounding transaction
commits; outside a transaction, at once. Tasks take ids and are safe to run twice. Each app registers its
tasks when Django starts (its AppConfig.ready), so an unknown name fails here, at the decision."""

from __future__ import annotations

from typing import Any

from celery import current_app
from django.db import transaction


def enqueue(task_name: str, *args: Any) -> None:
    """Publish `task_name(*args)` after the current transaction commits (eager in tests, as Celery is)."""
    task = current_app.tasks[task_name]
    transaction.on_commit(lambda: task.apply_async(args))
