from celery import shared_task

from core.idempotency import idempotency_records_purge


@shared_task
def purge_idempotency_records() -> int:
    """Delete Idempotency-Key records past their retention (IDEMPOTENCY_KEY_TTL_HOURS)."""
    return idempotency_records_purge()


@shared_task
def ping() -> str:
    return "pong"
