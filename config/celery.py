import os
from collections.abc import Iterator
from contextlib import contextmanager

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("premier")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@contextmanager
def tasks_in_process() -> Iterator[None]:
    """Run the tasks published inside the block in this process (eagerly) instead of sending them to the broker.

    For commands that must finish their work before a worker is running (`setup_demo` under `make run`)."""
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    try:
        yield
    finally:
        app.conf.task_always_eager = previous
