from __future__ import annotations

import logging

from django.conf import settings
from django.db import connection
from ninja import Router, Schema, Status

from accounts.services import user_roles
from core.auth import request_user, user_auth
from core.schemas import ErrorOut, describe, responses

logger = logging.getLogger("premier.health")
router = Router(tags=["system"])


class HealthOut(Schema):
    status: str
    database: str
    broker: str


class MeOut(Schema):
    id: int
    email: str
    first_name: str
    last_name: str
    roles: list[str]


def _broker_status() -> str:
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return "eager"
    from config.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return "ok"
    except Exception:  # noqa: BLE001 - any failure means unreachable
        return "unreachable"


def _database_status() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except Exception:  # noqa: BLE001
        logger.exception("Database health check failed")
        return "unreachable"


@router.get(
    "/health",
    auth=None,
    response={200: HealthOut, 503: HealthOut, 429: ErrorOut},
    summary="Service health",
    description=describe(
        "anyone, without credentials (load balancers, monitoring).",
        "Checks that the database answers and the Celery broker is reachable ('eager' when Celery runs "
        "in-process). 200 when both are usable, 503 otherwise.",
        errors={
            503: '`degraded`: the database or the broker does not answer; the body (`status: "degraded"`) says which.'
        },
    ),
)
def health(request):
    body = {"database": _database_status(), "broker": _broker_status()}
    healthy = body["database"] == "ok" and body["broker"] in {"ok", "eager"}
    body["status"] = "ok" if healthy else "degraded"
    return Status(200 if healthy else 503, body)


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
