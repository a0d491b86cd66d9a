"""Per-customer rollups that scoring reads instead of raw rows. (Owned by the scoring issue.)

- `InteractionDayRollup`: interactions per (customer, UTC day, channel).
- `RevenueDayRollup`: revenue per (customer, day) in integer minor units (cents; one currency assumed).

Ingestion on PostgreSQL applies the written rows as deltas (`rollups_apply_deltas`), and so does an
interaction the programme records (`rollups_count_interaction`). A batch of rows that are all new (the usual
feed) is applied after its commit instead: the ingest transaction records a `RollupBatch` and enqueues
`loyalty.tasks.rollups_apply_batch` through the outbox; `rollups_apply_pending` applies whatever is still pending
and every reader of the rollups (a scoring run, a refresh, a rebuild) calls it first, so the rollups are current
before anyone reads them (not at the ingest commit). Elsewhere a refresh recomputes the affected
(customer, day) cells from the raw rows (delete, then INSERT ... SELECT), so re-sent or corrected raw rows
always leave correct rollups. Both mark the incremental scoring state of those customers stale when the change
reaches back into days a scoring state already covers, so the next scoring run recomputes them instead of
rolling them forward. If a raw row moves (another customer or day), refresh both its old and its new
customer/day.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

from django.db import connection, transaction
from django.utils import timezone

from core.rows import Statement
from core.sql import (
    adapt_date,
    adapt_start_of_day,
    day_number,
    id_chunks,
    is_postgres,
    sql_bigint,
    sql_utc_date,
    tune_transaction,
)
from loyalty.customers.models import Customer, Interaction, RevenueEntry
from loyalty.segmentation.models import (
    InteractionDayRollup,
    RevenueDayRollup,
    RollupBatch,
    ScoringModel,
    ScoringState,
)

INTERACTION_ROLLUP = InteractionDayRollup._meta.db_table
REVENUE_ROLLUP = RevenueDayRollup._meta.db_table
INTERACTION = Interaction._meta.db_table
REVENUE = RevenueEntry._meta.db_table
STATE = ScoringState._meta.db_table
MODEL = ScoringModel._meta.db_table
CUSTOMER = Customer._meta.db_table
ROLLUP_BATCH = RollupBatch._meta.db_table


def _id_filters(customer_ids: Sequence[int] | None):
    """(sql, params) pairs: one per chunk of customer ids, or one unfiltered pair for everyone."""
    if customer_ids is None:
        yield "", []
        return
    for chunk in id_chunks(sorted(set(customer_ids))):
        yield f" AND customer_id IN ({', '.join(['%s'] * len(chunk))})", chunk


def _mark_state_stale(cursor, *, id_sql: str, id_params: list, date_from: date) -> None:
    """States of models whose watermark reaches date_from no longer match the rollups for these customers."""
    cursor.execute(
        f"UPDATE {STATE} SET stale = %s WHERE scoring_model_id IN "
        f"(SELECT id FROM {MODEL} WHERE state_as_of_day >= %s){id_sql}",
        [True, day_number(date_from), *id_params],
    )


@transaction.atomic
def rollups_refresh_interactions(*, customer_ids: Sequence[int] | None, date_from: date, date_to: date) -> None:
    """Recompute interaction rollups of `customer_ids` (None = everyone) for days date_from..date_to from the
    raw interactions, set-based. Ingestion calls this after writing interactions."""
    if customer_ids is not None and not customer_ids:
        return
    with connection.cursor() as cursor:
        tune_transaction(cursor)
        _pending_settle(cursor)
        for id_sql, id_params in _id_filters(customer_ids):
            cursor.execute(
                f"DELETE FROM {INTERACTION_ROLLUP} WHERE day >= %s AND day <= %s{id_sql}",
                [adapt_date(date_from), adapt_date(date_to), *id_params],
            )
            cursor.execute(
                f"INSERT INTO {INTERACTION_ROLLUP} (customer_id, day, channel, count) "
                f"SELECT customer_id, {sql_utc_date('occurred_at')}, channel, COUNT(*) FROM {INTERACTION} "
                f"WHERE occurred_at >= %s AND occurred_at < %s{id_sql} GROUP BY 1, 2, 3",
                [adapt_start_of_day(date_from), adapt_start_of_day(date_to + timedelta(days=1)), *id_params],
            )
            _mark_state_stale(cursor, id_sql=id_sql, id_params=id_params, date_from=date_from)


_COUNT_INTERACTION = Statement(
    lambda using: (
        f"INSERT INTO {INTERACTION_ROLLUP} (customer_id, day, channel, count) VALUES (%s, %s, %s, 1) "
        f"ON CONFLICT (customer_id, day, channel) DO UPDATE SET count = {INTERACTION_ROLLUP}.count + 1"
    ),
    name="rollup_count_interaction",
)
_MARK_CUSTOMER_STALE = Statement(
    lambda using: (
        f"UPDATE {STATE} SET stale = %s WHERE scoring_model_id IN "
        f"(SELECT id FROM {MODEL} WHERE state_as_of_day >= %s) AND customer_id = %s"
    ),
    name="rollup_mark_customer_stale",
)


@transaction.atomic(savepoint=False)  # two statements, one unit; no savepoint inside the caller's transaction
def rollups_count_interaction(*, customer_id: int, day: date, channel: str) -> None:
    """Add one interaction to its rollup cell (an upsert that adds, so it composes with concurrent ingestion)
    and mark the customer's scoring state stale where it already covers that day. Every programme interaction
    (concierge request, event attendance, community action) runs both: prepared statements (core.rows)."""
    _COUNT_INTERACTION.execute([customer_id, adapt_date(day), channel])
    _MARK_CUSTOMER_STALE.execute([True, day_number(day), customer_id])


@transaction.atomic
def rollups_refresh_revenue(*, customer_ids: Sequence[int] | None, date_from: date, date_to: date) -> None:
    """Recompute revenue rollups of `customer_ids` (None = everyone) for periods date_from..date_to.
    Ingestion calls this after writing revenue entries."""
    if customer_ids is not None and not customer_ids:
        return
    with connection.cursor() as cursor:
        tune_transaction(cursor)
        _pending_settle(cursor)
        for id_sql, id_params in _id_filters(customer_ids):
            cursor.execute(
                f"DELETE FROM {REVENUE_ROLLUP} WHERE day >= %s AND day <= %s{id_sql}",
                [adapt_date(date_from), adapt_date(date_to), *id_params],
            )
            cursor.execute(
                f"INSERT INTO {REVENUE_ROLLUP} (customer_id, day, amount_minor) "
                f"SELECT customer_id, period, SUM(CAST(ROUND(amount * 100) AS {sql_bigint()})) FROM {REVENUE} "
                f"WHERE period >= %s AND period <= %s{id_sql} GROUP BY 1, 2",
                [adapt_date(date_from), adapt_date(date_to), *id_params],
            )
            _mark_state_stale(cursor, id_sql=id_sql, id_params=id_params, date_from=date_from)


def rollups_apply_deltas(cursor, *, kind: str, added: str, removed: str) -> None:
    """PostgreSQL, inside the ingesting transaction: apply the cells of raw rows just written to the rollups.
    `added` and `removed` are temporary tables of cells (customer_id, day, and channel or amount_minor): new rows
    and the new values of changed rows, and the old values of changed rows. Added cells are upserts that add to
    the stored value (`ON CONFLICT ... DO UPDATE`) and removed cells are subtracted from rows locked first, both
    in key order: concurrent batches for the same cells add up (no recomputation from snapshots that cannot
    see each other) and lock in the same order. Cells left with no raw rows are deleted. The scoring state of
    a customer is marked stale where the customer's cells reach back into days the state already covers."""
    interactions = kind == "interactions"
    rollup = INTERACTION_ROLLUP if interactions else REVENUE_ROLLUP
    keys = ["customer_id", "day", "channel"] if interactions else ["customer_id", "day"]
    key = ", ".join(keys)
    value, total = ("count", "COUNT(*)") if interactions else ("amount_minor", "SUM(amount_minor)")
    match = " AND ".join(f"r.{k} = o.{k}" for k in keys)
    cursor.execute(
        f"INSERT INTO {rollup} AS r ({key}, {value}) SELECT {key}, {total} FROM {added} GROUP BY {key} "
        f"ORDER BY {key} ON CONFLICT ({key}) DO UPDATE SET {value} = r.{value} + EXCLUDED.{value}"
    )
    cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {removed})")
    if cursor.fetchone()[0]:
        cells = f"(SELECT {key}, {total} AS v FROM {removed} GROUP BY {key}) o"
        cursor.execute(
            f"SELECT 1 FROM {rollup} r, {cells} WHERE {match} "
            f"ORDER BY {', '.join(f'r.{k}' for k in keys)} FOR UPDATE OF r"
        )
        cursor.execute(f"UPDATE {rollup} r SET {value} = r.{value} - o.v FROM {cells} WHERE {match}")
        empty = (
            "r.count = 0"
            if interactions
            else f"r.amount_minor = 0 AND NOT EXISTS (SELECT 1 FROM {REVENUE} e "
            "WHERE e.customer_id = r.customer_id AND e.period = r.day)"
        )
        cursor.execute(f"DELETE FROM {rollup} r USING {cells} WHERE {match} AND {empty}")
    cursor.execute(
        f"UPDATE {STATE} AS s SET stale = TRUE FROM (SELECT customer_id, MIN(day) - DATE '1970-01-01' AS first "
        f"FROM (SELECT customer_id, day FROM {added} UNION ALL SELECT customer_id, day FROM {removed}) c "
        f"GROUP BY 1) n, {MODEL} m "
        "WHERE s.customer_id = n.customer_id AND s.scoring_model_id = m.id AND m.state_as_of_day >= n.first "
        "AND NOT s.stale"
    )


DAY_INDEXES = {INTERACTION_ROLLUP: "interaction_rollup_day_idx", REVENUE_ROLLUP: "revenue_rollup_day_idx"}


@transaction.atomic
def rollups_rebuild() -> dict[str, int]:
    """Rebuild both rollup tables from every raw row; every scoring state is dropped (the next run rebuilds
    it). On PostgreSQL the day indexes are dropped and built again after the load, and rows go in sorted."""
    with connection.cursor() as cursor:
        tune_transaction(cursor, work_mem="512MB")
        if is_postgres():
            # Every raw row is counted below, those of pending batches too: they are applied by this rebuild.
            cursor.execute(f"LOCK TABLE {ROLLUP_BATCH} IN EXCLUSIVE MODE")
            cursor.execute(f"UPDATE {ROLLUP_BATCH} SET applied_at = now() WHERE applied_at IS NULL")
            cursor.execute(f"TRUNCATE {INTERACTION_ROLLUP}, {REVENUE_ROLLUP}")
            for index in DAY_INDEXES.values():
                cursor.execute(f"DROP INDEX IF EXISTS {index}")
        else:
            cursor.execute(f"DELETE FROM {INTERACTION_ROLLUP}")
            cursor.execute(f"DELETE FROM {REVENUE_ROLLUP}")
        cursor.execute(
            f"INSERT INTO {INTERACTION_ROLLUP} (customer_id, day, channel, count) "
            f"SELECT customer_id, {sql_utc_date('occurred_at')}, channel, COUNT(*) FROM {INTERACTION} "
            "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
        )
        interactions = cursor.rowcount
        cursor.execute(
            f"INSERT INTO {REVENUE_ROLLUP} (customer_id, day, amount_minor) "
            f"SELECT customer_id, period, SUM(CAST(ROUND(amount * 100) AS {sql_bigint()})) FROM {REVENUE} "
            "GROUP BY 1, 2 ORDER BY 1, 2"
        )
        revenue = cursor.rowcount
        if is_postgres():
            for table, index in DAY_INDEXES.items():
                cursor.execute(f"CREATE INDEX {index} ON {table} (day)")
        # Every state is rebuilt by the next run of its model.
        cursor.execute(f"TRUNCATE {STATE}" if is_postgres() else f"DELETE FROM {STATE}")
        cursor.execute(f"UPDATE {MODEL} SET state_as_of_day = NULL")
    return {"interaction_rows": interactions, "revenue_rows": revenue}


# --------------------------------------------------------------------------------------------------------------
# Batches applied after commit (PostgreSQL): see RollupBatch.

# The rollup cell of a raw row (PostgreSQL), named as the rollups name them.
_RAW_CELLS = {
    RollupBatch.Kind.INTERACTIONS: (
        INTERACTION,
        "customer_id bigint, day date, channel text",
        "customer_id, (occurred_at AT TIME ZONE 'UTC')::date, channel",
    ),
    RollupBatch.Kind.REVENUE: (
        REVENUE,
        "customer_id bigint, day date, amount_minor bigint",
        "customer_id, period, CAST(ROUND(amount * 100) AS bigint)",
    ),
}
BATCH_TASK = "loyalty.tasks.rollups_apply_batch"


def rollup_batch_record(cursor, *, batch_id: int, kind: str, first_id: int, rows: int) -> None:
    """Inside the ingest transaction, after its INSERT of `rows` new raw rows of `kind` tagged with
    ingest_batch_id = `batch_id` (from `rollup_batch_next_id`) and ids above `first_id`: record the batch and
    enqueue its task through the outbox (published after commit; nothing if the transaction rolls back)."""
    from core.outbox import enqueue

    table = _RAW_CELLS[kind][0]
    cursor.execute(
        f"INSERT INTO {ROLLUP_BATCH} (id, kind, first_id, last_id, rows, created_at) "
        "VALUES (%s, %s, %s, currval(pg_get_serial_sequence(%s, 'id')), %s, now())",
        [batch_id, kind, first_id, table, rows],
    )
    enqueue(BATCH_TASK, batch_id)


def rollup_batch_next_id(cursor, *, kind: str) -> tuple[int, int]:
    """(a new batch id, a lower bound of the ids the batch's raw rows will get) before the batch's INSERT. The
    bound is the raw table's sequence as it stands: ids handed out later are larger (the sequence caches 1)."""
    table = _RAW_CELLS[kind][0]
    cursor.execute(
        "SELECT nextval(pg_get_serial_sequence(%s, 'id')), pg_sequence_last_value(pg_get_serial_sequence(%s, 'id'))",
        [ROLLUP_BATCH, table],
    )
    batch_id, last_value = cursor.fetchone()
    return batch_id, (last_value or 0) + 1


def _batches_apply(cursor, batches: Sequence[tuple[int, str, int, int]]) -> None:
    """Apply the cells of `batches` ((id, kind, first_id, last_id), locked and pending) and mark them applied."""
    for kind, (table, columns, cells) in _RAW_CELLS.items():
        mine = [(b, first, last) for b, k, first, last in batches if k == kind]
        if not mine:
            continue
        selects = " UNION ALL ".join(
            [f"SELECT {cells} FROM {table} WHERE id BETWEEN %s AND %s AND ingest_batch_id = %s"] * len(mine)
        )
        params = [value for b, first, last in mine for value in (first, last, b)]
        cursor.execute(f"CREATE TEMP TABLE rollup_batch_added ({columns}) ON COMMIT DROP")
        cursor.execute(f"CREATE TEMP TABLE rollup_batch_removed ({columns}) ON COMMIT DROP")
        cursor.execute(f"INSERT INTO rollup_batch_added {selects}", params)
        rollups_apply_deltas(cursor, kind=kind, added="rollup_batch_added", removed="rollup_batch_removed")
        cursor.execute("DROP TABLE rollup_batch_added, rollup_batch_removed")
    cursor.execute(
        f"UPDATE {ROLLUP_BATCH} SET applied_at = now() WHERE id IN ({', '.join(['%s'] * len(batches))})",
        [b[0] for b in batches],
    )


def rollups_apply_batches(cursor, *, batch_ids: Sequence[int] | None) -> int:
    """Inside a transaction on PostgreSQL: lock the pending batches among `batch_ids` (None: every committed
    pending batch) in id order, waiting for any that another transaction is applying (it then counts as applied),
    and apply them. Answers how many this call applied."""
    if batch_ids is not None and not batch_ids:
        return 0
    where = "" if batch_ids is None else f" AND id IN ({', '.join(['%s'] * len(batch_ids))})"
    cursor.execute(
        f"SELECT id, kind, first_id, last_id FROM {ROLLUP_BATCH} WHERE applied_at IS NULL{where} "
        "ORDER BY id FOR UPDATE",
        list(batch_ids or []),
    )
    batches = cursor.fetchall()
    if batches:
        _batches_apply(cursor, batches)
    return len(batches)


def _retry_deadlocks(apply, attempts: int = 3) -> int:
    """Run `apply` in its own transaction; a deadlock with a concurrent writer of the same cells runs it again."""
    from django.db import OperationalError

    for attempt in range(attempts):
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                tune_transaction(cursor)
                return apply(cursor)
        except OperationalError as exc:
            if "deadlock" not in str(exc) or attempt == attempts - 1:
                raise
    return 0  # pragma: no cover - the loop returns or raises


def rollup_batch_apply(*, batch_id: int) -> bool:
    """The task's service: apply one batch's cells if it is still pending. Idempotent: a batch applied (or
    purged after applying) before is left alone. Answers whether this call applied it."""
    if not is_postgres():
        return False
    return bool(_retry_deadlocks(lambda cursor: rollups_apply_batches(cursor, batch_ids=[batch_id])))


def rollups_apply_pending() -> int:
    """Apply every batch committed so far and still pending, in one transaction (its own: call it outside a
    transaction that reads the rollups, before reading them). What every reader of the rollups calls first.
    Answers how many batches it applied. Other databases apply at commit: nothing to do."""
    if not is_postgres():
        return 0
    return _retry_deadlocks(lambda cursor: rollups_apply_batches(cursor, batch_ids=None))


def _pending_settle(cursor) -> None:
    """Before recomputing cells from the raw rows (a refresh): apply pending batches, with new batches held off
    until this transaction ends (their rows would otherwise be counted by the recompute and again by their task)."""
    if is_postgres():
        cursor.execute(f"LOCK TABLE {ROLLUP_BATCH} IN EXCLUSIVE MODE")
        rollups_apply_batches(cursor, batch_ids=None)


def rollup_batches_purge(*, older_than_hours: float = 72) -> int:
    """Delete batches applied more than `older_than_hours` ago (a task finding no batch does nothing)."""
    deleted, _ = RollupBatch.objects.filter(
        applied_at__isnull=False, applied_at__lt=timezone.now() - timedelta(hours=older_than_hours)
    ).delete()
    return deleted
