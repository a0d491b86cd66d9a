"""Scoring models and scoring runs: CustomerMetrics for every customer, set-based in the database.

The engagement score (0-100) of a customer as of day T combines three parts (see README "Scoring and
segmentation" for the default model and how it follows the field data):

- breadth   = contact channels used in the engagement window / 6
- frequency = active weeks (Monday-start weeks with any interaction) out of the last ceil(window / 7)
- recency   = percentile (percent_rank, 0..1) among all customers of the decayed, channel-weighted activity
              D(T) = sum over interactions of w(channel) * 2^(-(T - day) / H), H = half-life in days

    score = 100 * (b * breadth + f * frequency + r * recency) / (b + f + r)

D rolls forward without rescanning history: D(T + d) = D(T) * 2^(-d / H) + new. Each scoring model keeps one
`ScoringState` row per customer (D, a bit mask of active weeks, the last day per channel, revenue in the
window). A run rolls the states forward from the model's watermark with the rollup rows of the new days only,
recomputes from the rollups the customers whose older data changed (stale) or who are new, then writes every
customer's CustomerMetrics with one INSERT ... SELECT (ranks and percentiles by window functions).
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from accounts.models import User
from core import outbox, runs
from core.errors import Conflict, ValidationFailed
from core.sql import (
    adapt_date,
    day_from_number,
    day_number,
    flt,
    is_postgres,
    sql_day_number,
    tune_transaction,
)
from core.sql import week_of as week_of
from loyalty.customers.models import CONTACT_CHANNELS, Channel, Customer
from loyalty.segmentation.models import (
    CustomerMetrics,
    InteractionDayRollup,
    RevenueDayRollup,
    RunStatus,
    ScoringModel,
    ScoringRun,
    ScoringState,
)
from loyalty.segmentation.services.rollups import rollups_apply_pending

STATE = ScoringState._meta.db_table
METRICS = CustomerMetrics._meta.db_table
CUSTOMER = Customer._meta.db_table
INTERACTION_ROLLUP = InteractionDayRollup._meta.db_table
REVENUE_ROLLUP = RevenueDayRollup._meta.db_table
CONTACT = [str(c) for c in CONTACT_CHANNELS]
ALL_CHANNELS = [str(c) for c in Channel.values]
MAX_WEEKS = 62

# Derived from the field data (DESIGN.md section 1): engagement index by channel social 76, app 71, website 65;
# weights are the index relative to the website's (channels without an index weigh 1).
DEFAULT_CHANNEL_WEIGHTS: dict[str, float] = {
    "phone": 1.0,
    "online": 1.0,
    "store": 1.0,
    "email": 1.0,
    "social": round(76 / 65, 2),
    "app": round(71 / 65, 2),
    "concierge": 1.0,
    "event": 1.0,
}
DEFAULT_MODEL = {
    "name": "default",
    "description": "Default engagement model derived from the field data (see README).",
    "revenue_window_days": 365,
    "engagement_window_days": 90,
    "channel_weights": DEFAULT_CHANNEL_WEIGHTS,
    "breadth_weight": 0.3,
    "frequency_weight": 0.3,
    "recency_weight": 0.4,
    "half_life_days": 90.0,
}
DEFINITION_FIELDS = [k for k in DEFAULT_MODEL if k != "name"]


# Ranks must not depend on the order in which floating-point terms were summed (rollups, rolled-forward state,
# raw rows in a reference all sum in different orders and differ in the last bits). Decayed activity is kept to
# ACTIVITY_QUANTUM (a millionth of one fresh interaction) and the score to SCORE_QUANTUM before ranking and
# storing: floor(x / quantum + 0.5) * quantum, the same expression in SQL, Python and the DuckDB reference.
ACTIVITY_SCALE = 1e6
SCORE_SCALE = 1e9


def quantize(value: float, scale: float) -> float:
    return math.floor(value * scale + 0.5) / scale


def sql_quantize(expr: str, scale: float) -> str:
    return f"(FLOOR(({expr}) * {flt(scale)} + {flt(0.5)}) / {flt(scale)})"


def weeks_in_window(engagement_window_days: int) -> int:
    return min(MAX_WEEKS, math.ceil(engagement_window_days / 7))


def engagement_score(
    *,
    channels_used: int,
    active_weeks: int,
    weeks: int,
    activity_percentile: float,
    breadth_weight: float,
    frequency_weight: float,
    recency_weight: float,
) -> float:
    """The score from its parts, quantized (the SQL computes the same expression). `activity_percentile` is
    0..1."""
    total = breadth_weight + frequency_weight + recency_weight
    value = (
        100.0
        * (
            breadth_weight * channels_used / 6.0
            + frequency_weight * active_weeks / weeks
            + recency_weight * activity_percentile
        )
        / total
    )
    return quantize(min(100.0, max(0.0, value)), SCORE_SCALE)


# ---------------------------------------------------------------------------------------------- models


def _validate_definition(data: dict[str, Any]) -> None:
    fields: dict[str, list[str]] = {}
    weights = data.get("channel_weights") or {}
    for channel, weight in weights.items():
        if channel not in ALL_CHANNELS:
            fields.setdefault(f"channel_weights.{channel}", []).append(f"Unknown channel. Known: {ALL_CHANNELS}.")
        elif isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 <= weight <= 100:
            fields.setdefault(f"channel_weights.{channel}", []).append("A number from 0 to 100.")
    if data["breadth_weight"] + data["frequency_weight"] + data["recency_weight"] <= 0:
        fields["recency_weight"] = ["The breadth, frequency and recency weights must not all be 0."]
    if data["engagement_window_days"] > MAX_WEEKS * 7:
        fields["engagement_window_days"] = [f"At most {MAX_WEEKS * 7} days."]
    if fields:
        raise ValidationFailed("The scoring model is not valid.", code="invalid_scoring_model", fields=fields)


@transaction.atomic
def scoring_model_create(*, name: str, created_by: User | None = None, **definition: Any) -> ScoringModel:
    """A new model, or the next version of `name` (models that were used are immutable: change = new version).
    Unspecified fields take the default model's values."""
    data = {**DEFAULT_MODEL, **{k: v for k, v in definition.items() if v is not None}, "name": name}
    data["channel_weights"] = {**DEFAULT_CHANNEL_WEIGHTS, **(definition.get("channel_weights") or {})}
    _validate_definition(data)
    versions = ScoringModel.objects.select_for_update().filter(name=name).values_list("version", flat=True)
    return ScoringModel.objects.create(version=max(versions, default=0) + 1, **data)


@transaction.atomic
def scoring_model_update(*, model: ScoringModel, **changes: Any) -> ScoringModel:
    model = ScoringModel.objects.select_for_update().get(pk=model.pk)
    if model.locked_at is not None:
        raise Conflict(
            "This scoring model was used by a run and is immutable; create a new version instead.",
            code="scoring_model_locked",
        )
    data = {f: getattr(model, f) for f in DEFINITION_FIELDS}
    data.update({k: v for k, v in changes.items() if v is not None})
    if changes.get("channel_weights") is not None:
        data["channel_weights"] = {**DEFAULT_CHANNEL_WEIGHTS, **changes["channel_weights"]}
    _validate_definition(data)
    for field, value in data.items():
        setattr(model, field, value)
    model.save()
    return model


def scoring_model_default() -> ScoringModel:
    """The newest version of the default model, created on first use."""
    model = ScoringModel.objects.filter(name=DEFAULT_MODEL["name"]).order_by("-version").first()
    return model or scoring_model_create(name=DEFAULT_MODEL["name"])


# ------------------------------------------------------------------------------------------------ runs


@transaction.atomic
def scoring_run_create(
    *, scoring_model: ScoringModel, as_of: datetime | None = None, created_by: User | None = None, enqueue=True
) -> ScoringRun:
    """Create a pending run (as of a day; default today) and enqueue it after commit. Locks the model."""
    now = timezone.now()
    as_of = (as_of or now).astimezone(UTC)
    ScoringModel.objects.filter(pk=scoring_model.pk, locked_at__isnull=True).update(locked_at=now)
    run = ScoringRun.objects.create(scoring_model=scoring_model, as_of=as_of, created_by=created_by)
    if enqueue:
        outbox.enqueue("loyalty.tasks.scoring_run_task", run.pk)
    return run


def _weights_case(model: ScoringModel) -> tuple[str, list]:
    weights = model.channel_weights or {}
    parts, params = [], []
    for channel in ALL_CHANNELS:
        parts.append(f"WHEN %s THEN {flt(weights.get(channel, 1.0))}")
        params.append(channel)
    return f"CASE channel {' '.join(parts)} ELSE {flt(0)} END", params


def _mask_agg(weeks: int, target_week: int) -> str:
    """Aggregate of a bit mask of active weeks (bit k = week target_week - k) over rows with a `wk` column."""
    bit = f"CASE WHEN wk > {target_week - weeks} THEN (CAST(1 AS BIGINT) << ({target_week} - wk)) ELSE 0 END"
    return f"bit_or({bit})" if is_postgres() else f"SUM(DISTINCT {bit})"


def _activity_aggregate(model: ScoringModel, *, t: int, prefix: str = "") -> tuple[str, list]:
    """SELECT list (customer_id, decayed, week_mask, last_day, last_<channel>...) over rollup rows `x`."""
    k = math.log(2) / model.half_life_days
    weeks = weeks_in_window(model.engagement_window_days)
    lasts = ", ".join(f"MAX(CASE WHEN channel = '{c}' THEN dn END) AS {prefix}last_{c}" for c in CONTACT)
    return (
        f"customer_id, SUM(w * cnt * EXP((dn - {t}) * {flt(k)})) AS {prefix}decayed, "
        f"{_mask_agg(weeks, week_of(t))} AS {prefix}week_mask, MAX(dn) AS {prefix}last_day, {lasts}",
        [],
    )


def _rollup_rows(model: ScoringModel, *, where: str) -> tuple[str, list]:
    weights_sql, params = _weights_case(model)
    dn = sql_day_number("day")
    return (
        f"SELECT customer_id, channel, count AS cnt, {dn} AS dn, ({dn} + 3) / 7 AS wk, {weights_sql} AS w "
        f"FROM {INTERACTION_ROLLUP} WHERE {where}",
        params,
    )


TARGETS = "scoring_state_targets"


def _state_insert(cursor, model: ScoringModel, *, t: int, r: int, only_missing: bool) -> int:
    """INSERT the state as of day t, computed from the rollups, for every customer (or only those without a
    state row: new, or deleted because stale). The few missing ones go to a temporary table first, so their
    rollup rows are read through the (customer, day, channel) index instead of scanning every rollup row."""
    day_t = adapt_date(day_from_number(t))
    day_r = adapt_date(day_from_number(r))
    day_rev_from = adapt_date(day_from_number(r - model.revenue_window_days))
    c_filter = r_filter = ""
    if only_missing:
        cursor.execute(f"DROP TABLE IF EXISTS {TARGETS}")
        cursor.execute(f"CREATE TEMPORARY TABLE {TARGETS} (customer_id BIGINT PRIMARY KEY)")
        cursor.execute(
            f"INSERT INTO {TARGETS} (customer_id) SELECT c.id FROM {CUSTOMER} c WHERE NOT EXISTS "
            f"(SELECT 1 FROM {STATE} s WHERE s.scoring_model_id = %s AND s.customer_id = c.id)",
            [model.pk],
        )
        if cursor.rowcount == 0:
            cursor.execute(f"DROP TABLE {TARGETS}")
            return 0
        if is_postgres():
            cursor.execute(f"ANALYZE {TARGETS}")
        c_filter = f" WHERE c.id IN (SELECT customer_id FROM {TARGETS})"
        r_filter = f" AND customer_id IN (SELECT customer_id FROM {TARGETS})"
    rows_sql, rows_params = _rollup_rows(model, where=f"day <= %s{r_filter}")
    agg_sql, _ = _activity_aggregate(model, t=t)
    lasts = ", ".join(f"i.last_{c}" for c in CONTACT)
    cols = ", ".join(f"last_{c}" for c in CONTACT)
    cursor.execute(
        f"INSERT INTO {STATE} (scoring_model_id, customer_id, as_of_day, decayed, week_mask, last_day, {cols}, "
        "revenue_minor, stale) "
        f"SELECT {int(model.pk)}, c.id, {t}, COALESCE(i.decayed, {flt(0)}), COALESCE(i.week_mask, 0), i.last_day, "
        f"{lasts}, COALESCE(r.revenue, 0), %s FROM {CUSTOMER} c "
        f"LEFT JOIN (SELECT {agg_sql} FROM ({rows_sql}) x GROUP BY customer_id) i ON i.customer_id = c.id "
        f"LEFT JOIN (SELECT customer_id, CAST(SUM(amount_minor) AS BIGINT) AS revenue FROM {REVENUE_ROLLUP} "
        f"WHERE day > %s AND day <= %s{r_filter} GROUP BY customer_id) r ON r.customer_id = c.id{c_filter} "
        "ORDER BY c.id",
        [False, *rows_params, day_t, day_rev_from, day_r],
    )
    inserted = cursor.rowcount
    if only_missing:
        cursor.execute(f"DROP TABLE {TARGETS}")
    return inserted


def _greatest(a: str, b: str) -> str:
    return f"CASE WHEN {a} IS NULL THEN {b} WHEN {b} IS NULL OR {a} >= {b} THEN {a} ELSE {b} END"


def _shifted_mask(weeks: int, t: int) -> str:
    shift = f"({week_of(t)} - (as_of_day + 3) / 7)"
    return f"(CASE WHEN {shift} >= {weeks} THEN 0 ELSE ((week_mask << {shift}) & {(1 << weeks) - 1}) END)"


def _state_roll_forward(cursor, model: ScoringModel, *, t0: int, t: int) -> None:
    """Roll non-stale states from watermark t0 to t with the rollup rows of days (t0, t] only."""
    k = math.log(2) / model.half_life_days
    weeks = weeks_in_window(model.engagement_window_days)
    rows_sql, rows_params = _rollup_rows(model, where="day > %s AND day <= %s")
    agg_sql, _ = _activity_aggregate(model, t=t, prefix="n_")
    sets = ", ".join(f"last_{c} = {_greatest(f'last_{c}', f'n.n_last_{c}')}" for c in CONTACT)
    cursor.execute(
        f"UPDATE {STATE} SET decayed = decayed * EXP((as_of_day - {t}) * {flt(k)}) + n.n_decayed, "
        f"week_mask = {_shifted_mask(weeks, t)} | n.n_week_mask, "
        f"last_day = {_greatest('last_day', 'n.n_last_day')}, {sets}, as_of_day = {t} "
        f"FROM (SELECT {agg_sql} FROM ({rows_sql}) x GROUP BY customer_id) n "
        f"WHERE {STATE}.scoring_model_id = {int(model.pk)} AND {STATE}.customer_id = n.customer_id "
        f"AND {STATE}.stale = %s",
        [*rows_params, adapt_date(day_from_number(t0)), adapt_date(day_from_number(t)), False],
    )


REVENUE_FOLD_DAYS = 31


def _revenue_delta_sql(model: ScoringModel, *, r: int, t: int) -> tuple[str, list]:
    """Per customer: revenue entering the window (r, t] minus revenue leaving it (r - W, t - W]."""
    w = model.revenue_window_days
    d = [adapt_date(day_from_number(x)) for x in (r, r, t, r - w, t - w)]
    return (
        # SUM of a BIGINT is NUMERIC on PostgreSQL: cast back, or the revenue sort compares numerics.
        "SELECT customer_id, CAST(SUM(CASE WHEN day > %s THEN amount_minor ELSE -amount_minor END) AS BIGINT) AS delta "
        f"FROM {REVENUE_ROLLUP} WHERE (day > %s AND day <= %s) OR (day > %s AND day <= %s) GROUP BY customer_id",
        d,
    )


def _revenue_fold(cursor, model: ScoringModel, *, r: int, t: int) -> None:
    """Move the stored revenue of non-stale states from watermark r to t."""
    delta_sql, params = _revenue_delta_sql(model, r=r, t=t)
    cursor.execute(
        f"UPDATE {STATE} SET revenue_minor = revenue_minor + n.delta FROM ({delta_sql}) n "
        f"WHERE {STATE}.scoring_model_id = {int(model.pk)} AND {STATE}.customer_id = n.customer_id "
        f"AND {STATE}.stale = %s",
        [*params, False],
    )


def scoring_state_update(*, model: ScoringModel, t: int) -> dict[str, Any]:
    """Bring the model's per-customer state to day t (day number); answers what it did.

    Revenue has its own watermark r <= t: the stored revenue is as of r and a run adds the (small) band of
    revenue rows entering and leaving the window between r and t when it reads the state; the stored revenue
    is moved to t only when r is more than REVENUE_FOLD_DAYS behind. (On the first day of a month every
    billing line of a year ago leaves the window: an UPDATE of nearly every state, which this avoids.)"""
    with transaction.atomic(), connection.cursor() as cursor:
        tune_transaction(cursor)
        model = ScoringModel.objects.select_for_update().get(pk=model.pk)
        t0, r = model.state_as_of_day, model.state_revenue_as_of_day
        if t0 is None or r is None or t < t0 or t - r >= model.revenue_window_days:
            cursor.execute(f"DELETE FROM {STATE} WHERE scoring_model_id = %s", [model.pk])
            mode, r = "rebuild", t
        else:
            if t > t0:
                _state_roll_forward(cursor, model, t0=t0, t=t)
            if t - r > REVENUE_FOLD_DAYS:
                _revenue_fold(cursor, model, r=r, t=t)
                r = t
            cursor.execute(f"DELETE FROM {STATE} WHERE scoring_model_id = %s AND stale = %s", [model.pk, True])
            mode = "incremental"
        recomputed = _state_insert(cursor, model, t=t, r=r, only_missing=mode == "incremental")
        if mode == "rebuild" and is_postgres():
            cursor.execute(f"ANALYZE {STATE}")  # the planner would take a million new rows for a few thousand
        ScoringModel.objects.filter(pk=model.pk).update(state_as_of_day=t, state_revenue_as_of_day=r)
    return {"mode": mode, "recomputed": recomputed, "revenue_as_of_day": r}


def _metrics_partition(run: ScoringRun) -> str:
    return f"{METRICS}_r{int(run.pk)}"


def _metrics_insert(
    cursor, run: ScoringRun, model: ScoringModel, *, t: int, r: int, timings: dict[str, float] | None = None
) -> int:
    """Write the run's CustomerMetrics. On PostgreSQL into a table of the run's own, without any index; the
    primary key is then built by one sort and the table attached as the run's partition (half the time of
    inserting into an indexed table). On SQLite into the table, in key order."""
    if is_postgres():
        # One metrics step at a time: ATTACH locks the parent and then the default partition, and a concurrent
        # run holding the default partition (its DELETE below) while waiting for the parent would deadlock.
        cursor.execute(f"LOCK TABLE {METRICS} IN SHARE UPDATE EXCLUSIVE MODE")
    cursor.execute(f"DELETE FROM {METRICS} WHERE scoring_run_id = %s", [run.pk])  # ORM-written rows, if any
    if is_postgres():
        target, order = _metrics_partition(run), ""
        cursor.execute(f"DROP TABLE IF EXISTS {target}")  # only ever a leftover: a run's metrics commit with it
        cursor.execute(
            f"CREATE TABLE {target} (LIKE {METRICS} INCLUDING DEFAULTS INCLUDING CONSTRAINTS, "
            f"CHECK (scoring_run_id = {int(run.pk)}))"  # lets ATTACH skip its scan
        )
    else:
        target, order = METRICS, "ORDER BY customer_id"
    k = math.log(2) / model.half_life_days
    weeks = weeks_in_window(model.engagement_window_days)
    window_start = t - model.engagement_window_days
    channels = " + ".join(f"CASE WHEN last_{c} > {window_start} THEN 1 ELSE 0 END" for c in CONTACT)
    active = " + ".join(f"((mask >> {j}) & 1)" for j in range(weeks))
    wb, wf, wr = model.breadth_weight, model.frequency_weight, model.recency_weight
    score = (
        f"{flt(100)} * ({flt(wb)} * channels_used / {flt(6)} + {flt(wf)} * active_weeks / {flt(weeks)} "
        f"+ {flt(wr)} * activity_pct) / {flt(wb + wf + wr)}"
    )
    bounded_score = sql_quantize(f"CASE WHEN {score} > {flt(100)} THEN {flt(100)} ELSE {score} END", SCORE_SCALE)
    decayed = sql_quantize(f"decayed * EXP((as_of_day - {t}) * {flt(k)})", ACTIVITY_SCALE)
    revenue, join, join_params = "revenue_minor", "", []
    if r < t:
        delta_sql, join_params = _revenue_delta_sql(model, r=r, t=t)
        revenue = f"{STATE}.revenue_minor + COALESCE(rd.delta, 0)"
        join = f" LEFT JOIN ({delta_sql}) rd ON rd.customer_id = {STATE}.customer_id"
    # One sort serves both revenue windows: COUNT(*) over (ORDER BY revenue DESC) counts the customers with at
    # least this revenue (peers included), so PERCENT_RANK ascending = (n - that count) / (n - 1).
    cursor.execute(
        f"INSERT INTO {target} (scoring_run_id, customer_id, revenue_minor, revenue_rank, revenue_percentile, "
        "engagement_score, engagement_percentile, channels_used, active_weeks, days_since_last, decayed_activity) "
        f"SELECT {int(run.pk)}, customer_id, revenue_minor, revenue_rank, "
        f"CASE WHEN n > 1 THEN {flt(100)} * (CAST(n - revenue_at_least AS DOUBLE PRECISION) / (n - 1)) "
        f"ELSE {flt(0)} END, score, "
        "100.0 * PERCENT_RANK() OVER (ORDER BY score), channels_used, active_weeks, days_since_last, decayed "
        f"FROM (SELECT s2.*, {bounded_score} AS score FROM ("
        "SELECT customer_id, revenue_minor, "
        "ROW_NUMBER() OVER (ORDER BY revenue_minor DESC, customer_id) AS revenue_rank, "
        "COUNT(*) OVER (ORDER BY revenue_minor DESC) AS revenue_at_least, "
        f"(SELECT COUNT(*) FROM {STATE} WHERE scoring_model_id = {int(model.pk)}) AS n, "
        "PERCENT_RANK() OVER (ORDER BY decayed) AS activity_pct, "
        f"decayed, channels_used, {active} AS active_weeks, days_since_last FROM ("
        f"SELECT {STATE}.customer_id, {revenue} AS revenue_minor, "
        f"{decayed} AS decayed, "
        f"{_shifted_mask(weeks, t)} AS mask, {channels} AS channels_used, "
        f"{t} - last_day AS days_since_last FROM {STATE}{join} WHERE scoring_model_id = %s) s1) s2) s3 "
        f"{order}",
        [*join_params, model.pk],
    )
    scored = cursor.rowcount
    inserted = time.perf_counter()
    if is_postgres():
        cursor.execute(f"ALTER TABLE {target} ADD PRIMARY KEY (scoring_run_id, customer_id)")
        cursor.execute(f"ALTER TABLE {METRICS} ATTACH PARTITION {target} FOR VALUES IN ({int(run.pk)})")
    if timings is not None:
        timings["metrics_key_and_attach"] = round(time.perf_counter() - inserted, 3)
    return scored


def scoring_run_delete(*, run: ScoringRun) -> None:
    """Delete a run with its metrics: on PostgreSQL its partition is dropped (no row-by-row delete)."""
    with transaction.atomic(), connection.cursor() as cursor:
        if is_postgres():
            cursor.execute(f"DROP TABLE IF EXISTS {_metrics_partition(run)}")
        run.delete()


def _set_progress(run: ScoringRun, progress: int, **extra: Any) -> None:
    runs.run_progress(ScoringRun, run.pk, progress, **extra)


def scoring_run_execute(*, run_id: int) -> ScoringRun:
    """Execute a pending run. Claimed by a conditional UPDATE (pending -> running): a duplicate delivery, or a
    delivery of a run that is running, finished or failed, leaves it alone (a run whose worker died is requeued
    by the reconciler, core.runs). A failure is recorded on the run (status failed, error) and leaves no
    metrics behind. The run's heartbeat moves at every step and, in a worker, every RUN_HEARTBEAT_INTERVAL."""
    run = ScoringRun.objects.select_related("scoring_model").get(pk=run_id)
    if not runs.run_claim(ScoringRun, run.pk, progress=5):
        return run
    timings: dict[str, float] = {}
    try:
        with runs.heartbeat(ScoringRun, run.pk):
            t = day_number(run.as_of.astimezone(UTC).date())
            started = time.perf_counter()
            # Ingested batches apply their rollup cells after commit: apply what is still pending first.
            rollups_apply_pending()
            state = scoring_state_update(model=run.scoring_model, t=t)
            timings["state"] = round(time.perf_counter() - started, 3)
            _set_progress(run, 50)
            runs.step_delay()
            started = time.perf_counter()
            with transaction.atomic(), connection.cursor() as cursor:
                tune_transaction(cursor)
                scored = _metrics_insert(
                    cursor, run, run.scoring_model, t=t, r=state["revenue_as_of_day"], timings=timings
                )
                timings["metrics"] = round(time.perf_counter() - started, 3)
                ScoringRun.objects.filter(pk=run.pk).update(
                    status=RunStatus.SUCCEEDED,
                    progress=100,
                    customers_scored=scored,
                    timings={**timings, "state_mode": state["mode"], "state_recomputed": state["recomputed"]},
                    heartbeat_at=timezone.now(),
                    finished_at=timezone.now(),
                )
    except Exception as exc:
        ScoringRun.objects.filter(pk=run.pk).update(
            status=RunStatus.FAILED, error=f"{type(exc).__name__}: {exc}"[:2000], finished_at=timezone.now()
        )
    run.refresh_from_db()
    return run


def scoring_run_retry(*, run: ScoringRun) -> ScoringRun:
    """A failed run starts again (409 `run_not_failed` otherwise)."""
    return runs.run_retry(ScoringRun, run.pk, task_name="loyalty.tasks.scoring_run_task", customers_scored=0)


def scoring_runs_reconcile() -> dict[str, list[int]]:
    """Requeue or fail scoring runs that never started or whose worker died (beat, core.runs)."""
    return runs.runs_reconcile(ScoringRun, task_name="loyalty.tasks.scoring_run_task")
