from celery import shared_task

from core.heartbeats import SCHEDULER, heartbeat_record
from core.idempotency import idempotency_records_purge


@shared_task
def purge_idempotency_records() -> int:
    """Delete Idempotency-Key records past their retention (IDEMPOTENCY_KEY_TTL_HOURS)."""
    return idempotency_records_purge()


@shared_task
def beat_heartbeat() -> str:
    """Sent by beat every BEAT_HEARTBEAT_SECONDS: records that the scheduler (and a worker) ran. /health reads it."""
    return heartbeat_record(name=SCHEDULER).isoformat()


@shared_task
def ping() -> str:
    return "pong"


@shared_task(name="core.tasks.outbox_relay")
def outbox_relay() -> int:
    """Beat (every OUTBOX_RELAY_INTERVAL seconds): publish outbox messages still unpublished after commit."""
    from core.outbox import outbox_relay as relay

    return relay()


@shared_task(name="core.tasks.outbox_purge")
def outbox_purge() -> int:
    """Beat (hourly): delete published outbox messages past their retention (OUTBOX_RETENTION_HOURS)."""
    from core.outbox import outbox_purge as purge

    return purge()


@shared_task(name="core.tasks.embedded_broker_purge")
def embedded_broker_purge() -> int:
    """Beat (hourly, embedded broker only): delete the messages the broker file has already delivered."""
    from core.outbox import embedded_broker_purge as purge

    return purge()
