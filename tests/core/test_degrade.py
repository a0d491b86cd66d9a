"""Degrade, don't die: a cache on a closed port, a broker on a closed port, a killed PostgreSQL connection, an
over-size body. Real services only: nothing of ours is mocked."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test import Client
from django.utils import timezone

from tests.conftest import ON_POSTGRES, ApiClient, broker_at, login_token
from tests.events.factories import member as events_member
from tests.factories import UserFactory

CLOSED_PORT = "redis://127.0.0.1:18139/0"  # nothing listens there
REPO = Path(__file__).resolve().parents[2]


def _caches(default: dict) -> dict:
    return {**django_settings.CACHES, "default": default}


@pytest.fixture
def cache_down(settings):
    settings.CACHES = _caches({"BACKEND": "core.cache.FailOpenRedisCache", "LOCATION": CLOSED_PORT})


@pytest.mark.django_db
def test_health_answers_200_naming_every_dependency_when_all_are_up(client):
    response = client.get("/api/v1/health")
    assert response.status_code == 200
    assert "Retry-After" not in response
    assert response.json() == {
        "status": "ok",
        "database": "ok",
        "cache": "ok",
        "broker": "eager",
        "workers": "eager",
        "scheduler": "eager",
        "down": [],
    }


@pytest.mark.django_db
def test_cache_down_health_answers_503_naming_the_cache_and_reads_still_answer(cache_down, caplog):
    member, _ = events_member()
    caplog.set_level(logging.WARNING, logger="premier.cache")
    started = time.monotonic()
    health = Client().get("/api/v1/health")
    assert health.status_code == 503
    assert health.json() == {
        "status": "degraded",
        "database": "ok",
        "cache": "down",
        "broker": "eager",
        "workers": "eager",
        "scheduler": "eager",
        "down": ["cache"],
    }
    # Login (allauth's rate limits and lockout read the cache) and the member's reads still answer.
    token = login_token(member)
    member_api = ApiClient({"X-Session-Token": token})
    assert member_api.get("/api/v1/me").status_code == 200
    assert member_api.get("/api/v1/events").status_code == 200
    assert time.monotonic() - started < 10
    assert any("Cache unreachable" in record.getMessage() for record in caplog.records)


@pytest.mark.django_db
def test_cache_down_wrong_passwords_are_answered_not_500(cache_down):
    user = UserFactory()
    answers = [
        Client()
        .post(
            "/_allauth/browser/v1/auth/login",
            {"email": user.email, "password": "wrong-password-1"},
            content_type="application/json",
        )
        .status_code
        for _ in range(3)
    ]
    assert answers == [400, 400, 400]


@pytest.mark.django_db
def test_broker_down_health_names_broker_and_workers_unknown(settings):

    settings.CELERY_TASK_ALWAYS_EAGER = False
    with broker_at(CLOSED_PORT):
        started = time.monotonic()
        response = Client().get("/api/v1/health")
        elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert response["Retry-After"] == "10"
    body = response.json()
    assert (body["broker"], body["workers"], body["scheduler"]) == ("down", "unknown", "down")
    assert body["down"] == ["broker", "workers", "scheduler"]
    assert elapsed < 8


@pytest.mark.django_db
def test_scheduler_heartbeat_fresh_is_ok_and_stale_beyond_three_intervals_is_down(settings):
    """A live broker (Redis DB 5) with no worker listening: workers down; the scheduler follows its heartbeat."""

    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.HEALTH_CHECK_TIMEOUT = 0.5
    from core.heartbeats import SCHEDULER, heartbeat_record

    interval = django_settings.BEAT_HEARTBEAT_SECONDS
    with broker_at("redis://127.0.0.1:6379/5"):
        heartbeat_record(name=SCHEDULER, at=timezone.now() - dt.timedelta(seconds=2 * interval))
        fresh = Client().get("/api/v1/health").json()
        heartbeat_record(name=SCHEDULER, at=timezone.now() - dt.timedelta(seconds=3 * interval + 5))
        stale = Client().get("/api/v1/health").json()
    assert (fresh["broker"], fresh["workers"], fresh["scheduler"]) == ("ok", "down", "ok")
    assert (stale["broker"], stale["workers"], stale["scheduler"]) == ("ok", "down", "down")
    assert stale["down"] == ["workers", "scheduler"]


@pytest.mark.django_db
def test_beat_heartbeat_task_records_the_time_and_is_scheduled():
    from core.heartbeats import SCHEDULER, heartbeat_last
    from core.tasks import beat_heartbeat

    before = timezone.now()
    beat_heartbeat.delay()
    assert before <= heartbeat_last(name=SCHEDULER) <= timezone.now()
    assert django_settings.CELERY_BEAT_SCHEDULE["beat-heartbeat"] == {
        "task": "core.tasks.beat_heartbeat",
        "schedule": django_settings.BEAT_HEARTBEAT_SECONDS,
    }


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path", ["/api/v1/ingest/customers", "/_allauth/app/v1/auth/signup", "/_allauth/browser/v1/auth/login"]
)
def test_over_size_body_answers_413_in_the_error_body(settings, ingest_key, path):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = json.dumps({"rows": [{"external_id": f"C{i}", "name": "x" * 50} for i in range(40)]})
    response = Client().post(path, body, content_type="application/json", headers={"X-API-Key": ingest_key})
    assert response.status_code == 413
    assert response.json() == {
        "detail": "The request body is larger than the server accepts.",
        "code": "request_too_large",
        "fields": {},
    }


def _kill_own_backend_on_query(number: int):
    """An execute wrapper that terminates this connection's PostgreSQL backend (pg_terminate_backend from a second
    connection) just before the `number`-th query of the request runs: a connection lost mid-request."""
    import psycopg2

    pid = connection.cursor().connection.info.backend_pid
    params = connection.get_connection_params()
    seen = {"n": 0}

    def wrapper(execute, sql, params_, many, context):
        seen["n"] += 1
        if seen["n"] == number:
            killer = psycopg2.connect(
                dbname=params["dbname"], user=params.get("user"), host=params.get("host"), port=params.get("port")
            )
            killer.autocommit = True
            with killer.cursor() as cursor:
                cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
                for _ in range(100):
                    cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
                    if cursor.fetchone()[0] == 0:
                        break
                    time.sleep(0.02)
            killer.close()
        return execute(sql, params_, many, context)

    return wrapper


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "path",
    ["/api/v1/me", "/api/v1/events", "/_allauth/app/v1/auth/session"],
)
def test_database_connection_lost_mid_request_answers_503_json_with_retry_after(path):
    member, _ = events_member()
    token = login_token(member)
    client = Client()
    try:
        with connection.execute_wrapper(_kill_own_backend_on_query(2)):
            response = client.get(path, headers={"X-Session-Token": token})
    finally:
        connection.close()
    assert response.status_code == 503
    assert response["Content-Type"].startswith("application/json")
    assert response["Retry-After"] == "5"
    assert response.json()["code"] == "database_unavailable"
    # The next request gets a new connection and answers normally.
    assert Client().get("/api/v1/me", headers={"X-Session-Token": token}).status_code == 200


@pytest.mark.shared_cache
@pytest.mark.django_db
def test_migrate_creates_the_shared_cache_tables_and_throttles_count_in_them():
    tables = connection.introspection.table_names()
    assert django_settings.HEARTBEAT_CACHE_TABLE in tables
    if os.environ.get("REDIS_URL"):  # the default cache is Redis: no table for it
        return
    assert django_settings.CACHE_TABLE in tables
    assert django_settings.CACHES["default"]["BACKEND"] == "django.core.cache.backends.db.DatabaseCache"
    Client().get("/api/v1/health")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT cache_key FROM {django_settings.CACHE_TABLE}")  # noqa: S608
        keys = [row[0] for row in cursor.fetchall()]
    assert any("throttle_anon_" in key for key in keys)


_REQUESTS = """
import django, os, sys
django.setup()
from django.test import Client
client = Client()
print(",".join(str(client.get("/api/v1/health").status_code) for _ in range(int(sys.argv[1]))))
"""


@pytest.mark.skipif(ON_POSTGRES, reason="the subprocesses use their own SQLite file")
def test_anonymous_limit_holds_across_processes(tmp_path):
    """Three processes with the default settings (no REDIS_URL) share one count: 3 x 3 requests against 5/min."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "SQLITE_PATH": str(tmp_path / "premier.sqlite3"),
        "PREMIER_VAR_DIR": str(tmp_path),
        "API_THROTTLE_ANON": "5/min",
        # No worker or beat runs beside these processes: Celery in-process, so /health judges the cache alone.
        "CELERY_TASK_ALWAYS_EAGER": "1",
    }
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", "createcachetable"], cwd=REPO, env=env, check=True
    )
    answers = []
    for _ in range(3):
        result = subprocess.run(  # noqa: S603
            [sys.executable, "-c", _REQUESTS, "3"], cwd=REPO, env=env, check=True, capture_output=True, text=True
        )
        answers += [int(code) for code in result.stdout.strip().splitlines()[-1].split(",")]
    assert answers == [200] * 5 + [429] * 4


@pytest.mark.django_db
def test_without_broadcast_on_the_transport_workers_follow_the_heartbeat(settings, tmp_path):
    """kombu's SQLAlchemy transport (the zero-setup broker) has no fanout, so a ping never reaches a worker in
    another process: the workers count as up when one ran the beat heartbeat within 3 intervals."""
    from core.heartbeats import SCHEDULER, heartbeat_record

    settings.CELERY_TASK_ALWAYS_EAGER = False
    interval = django_settings.BEAT_HEARTBEAT_SECONDS
    with broker_at(f"sqla+sqlite:///{tmp_path / 'broker.sqlite3'}"):
        heartbeat_record(name=SCHEDULER, at=timezone.now() - dt.timedelta(seconds=interval))
        fresh = Client().get("/api/v1/health")
        heartbeat_record(name=SCHEDULER, at=timezone.now() - dt.timedelta(seconds=4 * interval))
        stale = Client().get("/api/v1/health")
    assert fresh.status_code == 200
    assert (fresh.json()["broker"], fresh.json()["workers"], fresh.json()["scheduler"]) == ("ok", "ok", "ok")
    assert stale.status_code == 503
    assert stale.json()["down"] == ["workers", "scheduler"]
