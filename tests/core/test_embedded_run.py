"""The embedded default (`make run`): a real Celery worker and beat on a broker that needs nothing installed
(kombu's SQLAlchemy transport on a SQLite file), not eager execution.

The end-to-end test starts the worker and beat of the Procfile as real processes on a throwaway SQLite
database and broker file, whatever DATABASE_URL / CELERY_BROKER_URL say, so it runs in both CI legs."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import ExitStack, closing
from pathlib import Path

import pytest
from django.core.management import call_command

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
BEAT_INTERVAL = 3  # seconds between two hold-expiry runs in the end-to-end test
STOP_GRACE_SECONDS = 30  # config.procfile's
EXPIRY_RUN = re.compile(r"Task events\.tasks\.expire_holds\[[0-9a-f-]+\] succeeded in [0-9.]+s: (\d+)$", re.M)

CREATE_EXPIRING_HOLD = """
import json
from datetime import timedelta
from decimal import Decimal

import django

django.setup()
from django.utils import timezone

from events.models import Booking, Event
from events.services.bookings import booking_create
from tests.events.factories import EventFactory, member

event = EventFactory(price=Decimal("30.00"), capacity=4)
_, membership = member(guests=1)
booking = booking_create(membership=membership, event_id=event.pk, guests=1)
expires = timezone.now() + timedelta(seconds=1)
Booking.objects.filter(pk=booking.pk).update(hold_expires_at=expires)
event = Event.objects.get(pk=event.pk)
print(json.dumps({"booking": booking.pk, "event": event.pk, "status": booking.status, "seats": event.seats_booked,
                  "expires": expires.timestamp()}))
"""


def embedded_env(var_dir: Path) -> dict[str, str]:
    """The environment of `make run` with nothing configured, in a throwaway var dir."""
    unset = {
        "DATABASE_URL",
        "SQLITE_PATH",
        "CELERY_BROKER_URL",
        "CELERY_TASK_ALWAYS_EAGER",
        "REDIS_URL",
    }
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(
        PREMIER_VAR_DIR=str(var_dir),
        HOLD_EXPIRY_INTERVAL_SECONDS=str(BEAT_INTERVAL),
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        PYTHONUNBUFFERED="1",
        PYTHONPATH=str(ROOT),
        DJANGO_SETTINGS_MODULE="config.settings",
    )
    return env


def started_pids(log: Path) -> list[int]:
    """The processes honcho started (each leads its own process group)."""
    return [int(pid) for pid in re.findall(r"started \(pid=(\d+)\)", log.read_text(errors="replace"))]


def alive(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    return True


def kill_leftovers(runner: subprocess.Popen, log: Path) -> None:
    """Whatever happened in the test: Ctrl-C the runner, then SIGKILL every process group still there."""
    if runner.poll() is None:
        os.killpg(runner.pid, signal.SIGINT)
        try:
            runner.wait(timeout=STOP_GRACE_SECONDS + 15)
        except subprocess.TimeoutExpired:
            os.killpg(runner.pid, signal.SIGKILL)
            runner.wait(timeout=10)
    for pid in started_pids(log):
        if alive(pid):
            os.killpg(pid, signal.SIGKILL)


def wait_for(predicate, timeout: float, what: str, log: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"{what} did not happen within {timeout}s\n{log.read_text(errors='replace')[-5000:]}")


def test_hold_expires_and_frees_its_seats_on_the_real_worker_and_beat_within_two_intervals(tmp_path):
    var = tmp_path / "var"
    env = embedded_env(var)
    run = {"cwd": ROOT, "env": env, "capture_output": True, "text": True, "timeout": 300, "check": True}
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], **run)  # noqa: S603
    log = tmp_path / "procfile.log"
    with ExitStack() as cleanup:
        # What `make run` runs, without the web process (no port needed): worker and beat of the Procfile.
        runner = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "config.procfile", "worker", "beat"],
            cwd=ROOT,
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        cleanup.callback(kill_leftovers, runner, log)
        output = lambda: log.read_text(errors="replace")  # noqa: E731

        # Both up: the worker has run a hold-expiry pass that beat sent.
        wait_for(lambda: EXPIRY_RUN.search(output()), 120, "a first expiry run", log)
        hold = json.loads(
            subprocess.run([sys.executable, "-c", CREATE_EXPIRING_HOLD], **run).stdout.strip().splitlines()[-1]  # noqa: S603
        )
        assert (hold["status"], hold["seats"]) == ("held", 2)

        def expired():
            with closing(sqlite3.connect(var / "premier.sqlite3", timeout=30)) as db:
                status = db.execute("SELECT status FROM events_booking WHERE id = ?", [hold["booking"]]).fetchone()[0]
                seats = db.execute("SELECT seats_booked FROM events_event WHERE id = ?", [hold["event"]]).fetchone()[0]
            return (time.time(), status, seats) if status != "held" else None

        observed_at, status, seats = wait_for(expired, 2 * BEAT_INTERVAL + 60, "the hold's expiry", log)
        assert (status, seats) == ("expired", 0)
        print(f"hold expired {observed_at - hold['expires']:.2f}s after its expiry time (interval {BEAT_INTERVAL}s)")
        # Within two beat intervals of the hold's expiry time.
        assert observed_at - hold["expires"] <= 2 * BEAT_INTERVAL, observed_at - hold["expires"]
        # The worker's run expired exactly this hold (its log line follows the commit).
        wait_for(lambda: "1" in EXPIRY_RUN.findall(output()), 10, "the log line", log)
        assert EXPIRY_RUN.findall(output()).count("1") == 1

        # Ctrl-C stops both together, within the grace period and without a SIGKILL.
        pids = started_pids(log)
        assert len(pids) == 2
        stopping = time.monotonic()
        os.killpg(runner.pid, signal.SIGINT)
        runner.wait(timeout=STOP_GRACE_SECONDS + 15)
        print(f"stopped after {time.monotonic() - stopping:.1f}s")
        assert [pid for pid in pids if alive(pid)] == []
    text = output()
    assert "worker.1 stopped" in text and "beat.1 stopped" in text
    assert "SIGKILL" not in text
    assert "database is locked" not in text
    assert "Traceback" not in text


@pytest.mark.django_db(transaction=True)
def test_setup_demo_builds_the_demo_in_process_when_no_worker_runs_yet(settings, tmp_path):
    """`make run` prepares the demo before the worker starts: its tasks (the enrolment invitations, written to
    files) run in the command, and nothing is left waiting in the broker."""
    from config.celery import app
    from loyalty.programmes.models import Membership

    settings.VAR_DIR = tmp_path
    app.conf.task_always_eager = False  # as outside the tests: a real broker, and no worker yet
    try:
        call_command("seed_users")
        call_command("setup_demo", customers=400)
    finally:
        with app.connection_for_write() as connection:
            queue = app.amqp.queues[app.conf.task_default_queue](connection.default_channel)
            waiting = queue.queue_declare().message_count
            queue.purge()
    # Every treatment member was invited at enrolment, also those who churned since (the demo has a past).
    treatment = Membership.objects.filter(group="treatment")
    assert treatment.count() > 0
    assert treatment.filter(invited_at=None).count() == 0
    mails = (tmp_path / "demo-mail").iterdir()
    sent = sum(path.read_text().count("Subject: Welcome to Premier Circle") for path in mails)
    assert sent == treatment.exclude(customer__email="").count()
    assert waiting == 0


def test_outside_the_tests_celery_is_not_eager_and_uses_the_embedded_broker(tmp_path):
    script = (
        "import json, django; django.setup(); from celery import current_app as app; "
        "print(json.dumps([app.conf.task_always_eager, app.conf.broker_url]))"
    )
    out = subprocess.run(  # noqa: S603 - a fixed script
        [sys.executable, "-c", script], cwd=ROOT, env=embedded_env(tmp_path), capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [
        False,
        f"sqla+sqlite:///{tmp_path}/celery-broker.sqlite3",
    ]
