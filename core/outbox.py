"""Hand work to Celery tasks by name, through a transactional outbox, so that services never import their tasks
(tasks import services) and a broker outage delays work but loses none.

`enqueue("events.tasks.booking_refund", booking.pk)` records an `OutboxMessage` row in the surrounding
transaction (outside a transaction it commits at once). Nothing is published if that transaction rolls back.
The relay then publishes it:

- right after commit, in the same process (low latency), from the message as written (not read back) on a
  connection of the process's pool (OUTBOX_PUBLISH_POOL_LIMIT per process), then marked published. This attempt
  is bounded (short connect and socket timeouts, no kombu retries, OUTBOX_PUBLISH_TIMEOUT seconds) and never
  raises: a broker that is down leaves the row unpublished, logs a warning, and for
  OUTBOX_PUBLISH_BACKOFF_SECONDS the process stops trying in requests at all (the periodic relay takes over);
- by `outbox_relay()` (Celery beat, `core.tasks.outbox_relay`, every OUTBOX_RELAY_INTERVAL seconds, or
  `manage.py outbox_relay` by hand), which publishes whatever is still unpublished, oldest first, locking the
  rows with SELECT ... FOR UPDATE SKIP LOCKED on PostgreSQL so that two relays never publish the same batch.

A message can be published twice (a relay that dies between publishing and recording it); tasks take ids and
are idempotent, so a duplicate delivery does nothing. Published rows are deleted after OUTBOX_RETENTION_HOURS
(`outbox_purge`, hourly). In eager mode (tests, no broker) publishing runs the task in-process, as Celery does.

Each app registers its tasks when Django starts (its AppConfig.ready), so an unknown name fails here, at the
decision."""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import connection, connections, transaction
from django.db.models import F
from django.utils import timezone

from core.models import OutboxMessage
from core.rows import Statement

logger = logging.getLogger("premier.outbox")


def _setting(name: str, default: float) -> float:
    return float(getattr(settings, name, default))


def enqueue(task_name: str, *args: Any) -> OutboxMessage:
    """Record `task_name(*args)` in the current transaction; it is published once that transaction commits."""
    if task_name not in current_app.tasks:
        # A task registers when its module is imported; autodiscovery imports the apps' task modules.
        current_app.loader.import_default_modules()
    current_app.tasks[task_name]  # noqa: B018 - an unknown task name is a bug of the caller: KeyError here
    message = OutboxMessage.objects.create(task_name=task_name, args=list(args))
    transaction.on_commit(lambda: _publish_committed(message))
    return message


# --------------------------------------------------------------------------------------------- publishing


class _Backoff:
    """Per process: after a failed in-request publication, requests stop trying for a while (the relay
    publishes), so an outage costs each request nothing instead of a connect timeout."""

    until = 0.0

    @classmethod
    def open(cls) -> bool:
        return time.monotonic() < cls.until

    @classmethod
    def trip(cls) -> None:
        cls.until = time.monotonic() + _setting("OUTBOX_PUBLISH_BACKOFF_SECONDS", 5)

    @classmethod
    def reset(cls) -> None:
        cls.until = 0.0


def _eager() -> bool:
    return bool(current_app.conf.task_always_eager)


def _connection():
    """A broker connection with a bounded connect: no kombu retries, short connect and socket timeouts. The socket
    timeouts are Redis transport options; the embedded broker (kombu's SQLAlchemy transport) hands its options to
    SQLAlchemy's `create_engine`, which refuses them, so it gets only the connect timeout (a local file)."""
    timeout = _setting("OUTBOX_PUBLISH_TIMEOUT", 2)
    options = {**(current_app.conf.broker_transport_options or {}), "max_retries": 0}
    if str(current_app.conf.broker_url or "").startswith(("redis://", "rediss://")):
        options.update(socket_connect_timeout=timeout, socket_timeout=timeout)
    return current_app.connection_for_write(connect_timeout=timeout, transport_options=options)


def _send(message: OutboxMessage, conn) -> None:
    current_app.send_task(
        message.task_name, args=list(message.args), task_id=f"outbox-{message.pk}", connection=conn, retry=False
    )


def _record_failure(message_id: int, exc: BaseException) -> None:
    OutboxMessage.objects.filter(pk=message_id).update(
        attempts=F("attempts") + 1, last_error=f"{type(exc).__name__}: {exc}"[:2000], last_attempt_at=timezone.now()
    )


def _run_eagerly(message: OutboxMessage) -> None:
    """Eager mode: the task runs in-process (exceptions propagate, as with Celery's eager mode)."""
    claimed = OutboxMessage.objects.filter(pk=message.pk, published_at__isnull=True).update(published_at=timezone.now())
    if claimed:
        current_app.tasks[message.task_name].apply_async(list(message.args), task_id=f"outbox-{message.pk}")


_POOLS: dict[str, Any] = {}
_POOLS_LOCK = threading.Lock()


def _pool():
    """This process's pool of bounded broker connections (`_connection`) for after-commit publishing, per broker
    URL: a request reuses a connection another request opened instead of connecting each time (issue 16). A
    connection that failed is closed before it goes back, so the next use connects anew."""
    url = str(current_app.conf.broker_url)
    pool = _POOLS.get(url)
    if pool is None:
        with _POOLS_LOCK:
            pool = _POOLS.get(url)
            if pool is None:
                pool = _POOLS[url] = _connection().Pool(limit=int(_setting("OUTBOX_PUBLISH_POOL_LIMIT", 10)))
    return pool


def outbox_pools_reset() -> None:
    """Forget the pooled connections (a process that switched brokers, tests)."""
    with _POOLS_LOCK:
        for pool in _POOLS.values():
            pool.force_close_all()
        _POOLS.clear()


def publish_after_commit(message_id: int) -> bool:
    """The low-latency attempt for a committed message, by id (read back; nothing if already published). Never
    raises in broker mode: a failure leaves the row to the periodic relay. True when the message was published."""
    message = OutboxMessage.objects.filter(pk=message_id, published_at__isnull=True).first()
    if message is None:
        return False
    return _publish_committed(message)


def _publish_committed(message: OutboxMessage) -> bool:
    """The low-latency attempt right after the deciding transaction committed, with the message as it was
    written (no read back: the relay leaves messages younger than OUTBOX_RELAY_MIN_AGE to this attempt), on a
    pooled broker connection. Never raises in broker mode: a failure leaves the row to the periodic relay."""
    if _eager():
        _run_eagerly(message)
        return True
    if _Backoff.open():
        return False
    started = time.monotonic()
    timeout = _setting("OUTBOX_PUBLISH_TIMEOUT", 2)
    try:
        with _pool().acquire(block=True, timeout=timeout) as conn:
            try:
                conn.ensure_connection(max_retries=0, timeout=timeout)
                _send(message, conn)
            except Exception:
                conn.collect()  # closed without talking to the broker; reconnects on its next use
                raise
    except Exception as exc:  # the broker is down or slow: the relay publishes it later
        _Backoff.trip()
        logger.warning(
            "Outbox message %s (%s) not published after commit (%.2f s): %s; the relay will publish it.",
            message.pk,
            message.task_name,
            time.monotonic() - started,
            exc,
        )
        try:
            _record_failure(message.pk, exc)
        except Exception:  # the request has committed; a bookkeeping failure must not turn it into an error
            logger.exception("Outbox message %s: could not record the failed attempt", message.pk)
        return False
    _MARK_PUBLISHED.execute([connection.ops.adapt_datetimefield_value(timezone.now()), message.pk])
    return True


def _mark_published_sql(using: str) -> str:
    q = connections[using].ops.quote_name
    return f"UPDATE {q(OutboxMessage._meta.db_table)} SET {q('published_at')} = %s WHERE {q('id')} = %s"


_MARK_PUBLISHED = Statement(_mark_published_sql, name="outbox_mark_published")


def outbox_relay(*, batch_size: int = 100, max_batches: int = 50, min_age_seconds: float | None = None) -> int:
    """Publish unpublished messages, oldest first; returns how many were published. Stops at the first broker
    failure (recorded on the message). Messages younger than `min_age_seconds` (default OUTBOX_RELAY_MIN_AGE)
    are left to their after-commit attempt."""
    if min_age_seconds is None:
        min_age_seconds = _setting("OUTBOX_RELAY_MIN_AGE", 5)
    published = 0
    conn = None
    try:
        for _ in range(max_batches):
            cutoff = timezone.now() - timedelta(seconds=min_age_seconds)
            with transaction.atomic():
                pending = OutboxMessage.objects.filter(published_at__isnull=True, created_at__lte=cutoff).order_by("id")
                if connection.features.has_select_for_update_skip_locked:
                    pending = pending.select_for_update(skip_locked=True)
                batch = list(pending[:batch_size])
                if not batch:
                    break
                for message in batch:
                    if _eager():
                        _run_eagerly(message)
                        published += 1
                        continue
                    try:
                        if conn is None:
                            conn = _connection()
                            conn.ensure_connection(max_retries=0, timeout=_setting("OUTBOX_PUBLISH_TIMEOUT", 2))
                        _send(message, conn)
                    except Exception as exc:
                        logger.warning("Outbox relay: broker unavailable (%s); %s published so far.", exc, published)
                        _record_failure(message.pk, exc)
                        return published
                    OutboxMessage.objects.filter(pk=message.pk).update(published_at=timezone.now())
                    published += 1
            if len(batch) < batch_size:
                break
    finally:
        if conn is not None:
            conn.release()
    if published:
        _Backoff.reset()
        logger.info("Outbox relay published %s message(s).", published)
    return published


def outbox_purge(*, older_than_hours: float | None = None) -> int:
    """Delete published messages older than the retention (OUTBOX_RETENTION_HOURS); unpublished ones stay."""
    hours = _setting("OUTBOX_RETENTION_HOURS", 72) if older_than_hours is None else older_than_hours
    deleted, _ = OutboxMessage.objects.filter(
        published_at__isnull=False, published_at__lt=timezone.now() - timedelta(hours=hours)
    ).delete()
    return deleted


def outbox_pending_count() -> int:
    return OutboxMessage.objects.filter(published_at__isnull=True).count()


def embedded_broker_purge(broker_url: str | None = None) -> int:
    """Delete messages the embedded broker has already delivered. kombu's SQLAlchemy transport marks a delivered
    message invisible and never deletes it, so under `make run` its file grows by every task ever sent (the
    relay and heartbeats alone send several a minute). Nothing reads invisible rows: the transport neither
    redelivers nor counts them. Other brokers: nothing to do (0)."""
    url = broker_url or _setting("CELERY_BROKER_URL", "")
    if not url.startswith("sqla+"):
        return 0
    from sqlalchemy import create_engine, inspect, text

    engine = create_engine(url.removeprefix("sqla+"), connect_args={"timeout": 30} if "sqlite" in url else {})
    try:
        if not inspect(engine).has_table("kombu_message"):
            return 0
        with engine.begin() as conn:
            return conn.execute(text("DELETE FROM kombu_message WHERE visible = :no"), {"no": False}).rowcount
    finally:
        engine.dispose()
