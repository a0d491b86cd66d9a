"""Per-customer rollups that scoring reads instead of raw rows. (Owned by the scoring issue.)

- `InteractionDayRollup`: interactions per (customer, UTC day, channel).
- `RevenueDayRollup`: revenue per (customer, day) in integer minor units (cents; one currency assumed).

Ingestion on PostgreSQL applies the written rows as deltas (`rollups_apply_deltas`), and so does an
interaction the programme records (`rollups_count_interaction`). Elsewhere a refresh recomputes the affected
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
from loyalty.segmentation.models import InteractionDayRollup, RevenueDayRollup, ScoringModel, ScoringState

INTERACTION_ROLLUP = InteractionDayRollup._meta.db_table
REVENUE_ROLLUP = RevenueDayRollup._meta.db_table
INTERACTION = Interaction._meta.db_table
REVENUE = RevenueEntry._meta.db_table
STATE = ScoringState._meta.db_table
MODEL = ScoringModel._meta.db_table
CUSTOMER = Customer._meta.db_table


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
