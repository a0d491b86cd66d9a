from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.core.cache import caches
from django.db import connection
from django.http import HttpResponse
from django.utils import timezone
from ninja import Router, Schema, Status
from pydantic import Field

from accounts.services import user_roles
from core.auth import request_user, user_auth
from core.heartbeats import SCHEDULER, heartbeat_last
from core.schemas import ErrorOut, describe, responses

logger = logging.getLogger("premier.health")
router = Router(tags=["system"])


class HealthOut(Schema):
    status: str = Field(description="'ok' when every dependency is usable, else 'degraded'.")
    database: str = Field(description="ok or down.")
    cache: str = Field(description="ok or down (throttles and login rate limits fail open while it is down).")
    broker: str = Field(description="ok, down, or eager (Celery runs in-process).")
    workers: str = Field(description="ok (a worker answered a ping), down, unknown (broker down), or eager.")
    scheduler: str = Field(description="ok (beat heartbeat younger than 3 intervals), down, or eager.")
    down: list[str] = Field(description="The dependencies that are down.")


class MeOut(Schema):
    id: int
    email: str
    first_name: str
    last_name: str
    roles: list[str]


def _eager() -> bool:
    return bool(settings.CELERY_TASK_ALWAYS_EAGER)


def _database_status() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means down
        logger.warning("Health: database down (%s: %s)", type(exc).__name__, exc)
        return "down"


def _cache_status() -> str:
    cache = caches["default"]
    try:
        if hasattr(cache, "check"):  # core.cache.FailOpenRedisCache: talk to Redis itself, not the fail-open path
            cache.check()
        else:
            cache.set("premier:health", "1", 10)
            if cache.get("premier:health") != "1":
                raise RuntimeError("a value written to the cache could not be read back")
        return "ok"
    except Exception as exc:  # noqa: BLE001
        logger.warning("Health: cache down (%s: %s)", type(exc).__name__, exc)
        return "down"


def _broker_status() -> str:
    if _eager():
        return "eager"
    from config.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=settings.HEALTH_CHECK_TIMEOUT)
        return "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means unreachable
        logger.warning("Health: broker down (%s: %s)", type(exc).__name__, exc)
        return "down"


def _heartbeat_fresh() -> bool:
    last = heartbeat_last(name=SCHEDULER)
    stale_after = dt.timedelta(seconds=3 * settings.BEAT_HEARTBEAT_SECONDS)
    return last is not None and timezone.now() - last <= stale_after


def _workers_status(broker: str) -> str:
    if _eager():
        return "eager"
    if broker != "ok":
        return "unknown"
    from config.celery import app

    try:
        with app.connection_for_write() as conn:
            broadcast = "fanout" in conn.transport.implements.exchange_type
        if not broadcast:
            # No broadcast on this transport (kombu's SQLAlchemy transport): a ping would never reach a worker in
            # another process. A worker ran the beat heartbeat recently instead.
            return "ok" if _heartbeat_fresh() else "down"
        replies = app.control.ping(timeout=settings.HEALTH_CHECK_TIMEOUT)
    except Exception as exc:  # noqa: BLE001
        logger.warning("Health: worker ping failed (%s: %s)", type(exc).__name__, exc)
        return "down"
    return "ok" if replies else "down"


def _scheduler_status() -> str:
    if _eager():
        return "eager"
    try:
        return "ok" if _heartbeat_fresh() else "down"
    except Exception as exc:  # noqa: BLE001 - the heartbeat lives in the database
        logger.warning("Health: scheduler heartbeat unreadable (%s: %s)", type(exc).__name__, exc)
        return "down"


HEALTHY = {"ok", "eager"}
HEALTH_RETRY_AFTER_SECONDS = 10  # the dependency checks time out after 1 s; look again after a few


@router.get(
    "/health",
    auth=None,
    response={200: HealthOut, 503: HealthOut, 429: ErrorOut},
    summary="Service health",
    description=describe(
        "anyone, without credentials (load balancers, monitoring).",
        "Checks each dependency with a short timeout: the database, the cache, the Celery broker, the workers (a "
        "ping) and the scheduler (beat's heartbeat, stale after 3 intervals). Broker, workers and scheduler are "
        "'eager' when Celery runs in-process. 200 when all are usable.",
        errors={
            503: "`degraded`: a dependency is down; `down` in the body names each one; `Retry-After` says when to "
            "look again."
        },
    ),
)
def health(request, response: HttpResponse):
    body = {"database": _database_status(), "cache": _cache_status(), "broker": _broker_status()}
    body["workers"] = _workers_status(body["broker"])
    body["scheduler"] = _scheduler_status()
    down = [name for name, state in body.items() if state not in HEALTHY]
    body["status"] = "degraded" if down else "ok"
    body["down"] = down
    if down:
        response["Retry-After"] = str(HEALTH_RETRY_AFTER_SECONDS)
    return Status(503 if down else 200, body)


@router.get(
    "/me",
    auth=user_auth,
    response=responses({200: MeOut}),
    summary="Who am I",
    description=describe(
        "any logged-in user.",
        "The user and their roles (`member`, `concierge_agent`, `programme_manager`, `partner_staff`).",
    ),
)
def me(request):
    user = request_user(request)
    return MeOut(
        id=user.pk,
        email=user.email,
        first_name=user.first_name,
        last_name=user.last_name,
        roles=user_roles(user),
    )
