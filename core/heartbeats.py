"""Liveness heartbeats of the background processes, kept in the `heartbeats` database cache (never culled, shared
by every process). Beat runs `core.tasks.beat_heartbeat` every settings.BEAT_HEARTBEAT_SECONDS; a worker runs it
and records the time here. /health reads it."""

from __future__ import annotations

import datetime as dt

from django.core.cache import caches
from django.utils import timezone

SCHEDULER = "scheduler"


def heartbeat_record(*, name: str, at: dt.datetime | None = None) -> dt.datetime:
    at = at or timezone.now()
    caches["heartbeats"].set(f"heartbeat:{name}", at.isoformat(), None)
    return at


def heartbeat_last(*, name: str) -> dt.datetime | None:
    value = caches["heartbeats"].get(f"heartbeat:{name}")
    return dt.datetime.fromisoformat(value) if value else None
