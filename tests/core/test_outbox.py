"""core.outbox.enqueue in a fresh process (as in a web process: services publish their tasks by name and never
import them; each app registers its tasks when Django starts)."""

import json
import os
import subprocess
import sys
from pathlib import Path

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
