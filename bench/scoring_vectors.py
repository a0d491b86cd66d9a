"""Prototype measurement for the scoring storage proposal (docs/scoring-and-segmentation.md, "Where the time
goes"): the metrics of a run computed outside PostgreSQL's window functions, from the model's ScoringState read
once with COPY (binary) into numpy, checked against the run's stored CustomerMetrics, every field exactly.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/premier_scoring_250000 python bench/scoring_vectors.py

Needs a database seeded as for bench/segmentation.py. It scores once with the product (state built, metrics
written), then times: reading the state, computing every metric in numpy, writing the 1,000,000-row form
(COPY into an unindexed table) and the per-run vectors form (sorted activity, sorted score, revenue order as
bytea). Prints the figures and the ratios to the product's full run measured in the same process.
"""

from __future__ import annotations

import io
import math
import os
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402
from django.db import connection, transaction  # noqa: E402

from core.sql import day_number, tune_transaction, week_of  # noqa: E402
from loyalty.models import ScoringModel, ScoringRun  # noqa: E402
from loyalty.segmentation.services.scoring import (  # noqa: E402
    ACTIVITY_SCALE,
    CONTACT,
    SCORE_SCALE,
    scoring_model_create,
    scoring_run_create,
    scoring_run_delete,
    scoring_run_execute,
    weeks_in_window,
)

NULL_DAY = -(10**9)
STATE_COLUMNS = ["customer_id", "as_of_day", "decayed", "week_mask", "last_day", *(f"last_{c}" for c in CONTACT)]
STATE_TYPES = ["i8", "i4", "f8", "i8", "i4", *(["i4"] * len(CONTACT)), "i8"]


def copy_binary(sql: str, names: list[str], types: list[str]) -> np.ndarray:
    buf = io.BytesIO()
    with connection.cursor() as cursor:
        cursor.cursor.copy_expert(f"COPY ({sql}) TO STDOUT WITH (FORMAT binary)", buf)
    raw = buf.getvalue()
    fields = [("n", ">i2")]
    for name, kind in zip(names, types, strict=True):
        fields += [(f"{name}_len", ">i4"), (name, ">" + kind)]
    dtype = np.dtype(fields)
    body = raw[19 : len(raw) - 2]  # header (signature, flags, extension length) and the -1 trailer
    return np.frombuffer(body, dtype=dtype)


def quantize(values: np.ndarray, scale: float) -> np.ndarray:
    return np.floor(values * scale + 0.5) / scale


def compute(state: np.ndarray, model: ScoringModel, t: int) -> dict[str, np.ndarray]:
    k = math.log(2) / model.half_life_days
    weeks = weeks_in_window(model.engagement_window_days)
    n = len(state)
    decayed = quantize(state["decayed"].astype(np.float64) * np.exp((state["as_of_day"] - t) * k), ACTIVITY_SCALE)
    shift = week_of(t) - (state["as_of_day"].astype(np.int64) + 3) // 7
    mask = np.where(shift >= weeks, 0, (state["week_mask"].astype(np.int64) << shift) & ((1 << weeks) - 1))
    active = np.bitwise_count(mask.astype(np.uint64)).astype(np.int64)
    window_start = t - model.engagement_window_days
    channels = sum((state[f"last_{c}"] > window_start).astype(np.int64) for c in CONTACT)
    sorted_d = np.sort(decayed)
    activity_pct = np.searchsorted(sorted_d, decayed, "left") / (n - 1)
    wb, wf, wr = model.breadth_weight, model.frequency_weight, model.recency_weight
    score = 100.0 * (wb * channels / 6.0 + wf * active / float(weeks) + wr * activity_pct) / (wb + wf + wr)
    score = quantize(np.minimum(score, 100.0), SCORE_SCALE)
    sorted_score = np.sort(score)
    engagement_pct = 100.0 * (np.searchsorted(sorted_score, score, "left") / (n - 1))
    revenue = state["revenue_minor"].astype(np.int64)
    order = np.lexsort((state["customer_id"], -revenue))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(1, n + 1)
    sorted_revenue = revenue[order][::-1]
    revenue_pct = 100.0 * (np.searchsorted(sorted_revenue, revenue, "left") / (n - 1))
    last = state["last_day"].astype(np.int64)
    return {
        "customer_id": state["customer_id"].astype(np.int64),
        "revenue_minor": revenue,
        "revenue_rank": rank,
        "revenue_percentile": revenue_pct,
        "engagement_score": score,
        "engagement_percentile": engagement_pct,
        "channels_used": channels,
        "active_weeks": active,
        "days_since_last": np.where(last == NULL_DAY, -1, t - last),
        "decayed_activity": decayed,
        "_vectors": (sorted_d, sorted_score, state["customer_id"][order].astype(np.int64)),
    }


def main() -> None:
    as_of = date(2026, 6, 30)
    model = scoring_model_create(name=f"vectors-{int(time.time())}")
    when = datetime.combine(as_of, datetime.min.time(), UTC)
    scoring_run_execute(run_id=scoring_run_create(scoring_model=model, as_of=when, enqueue=False).pk)  # builds state
    started = time.perf_counter()
    run = scoring_run_execute(run_id=scoring_run_create(scoring_model=model, as_of=when, enqueue=False).pk)
    full = time.perf_counter() - started
    print(f"product full run (PostgreSQL window functions, 1 row per customer written): {full:.2f} s {run.timings}")
    model.refresh_from_db()
    t = day_number(as_of)
    cols = ", ".join(
        c if c in ("customer_id", "as_of_day", "decayed", "week_mask") else f"COALESCE({c}, {NULL_DAY})"
        for c in STATE_COLUMNS
    )
    sql = f"SELECT {cols}, revenue_minor FROM loyalty_scoringstate WHERE scoring_model_id = {model.pk}"
    started = time.perf_counter()
    state = copy_binary(sql, [*STATE_COLUMNS, "revenue_minor"], STATE_TYPES)
    read = time.perf_counter() - started
    started = time.perf_counter()
    metrics = compute(state, model, t)
    computed = time.perf_counter() - started
    n = len(state)
    print(f"read the state ({n:,} rows, COPY binary into numpy): {read:.2f} s; compute every metric: {computed:.2f} s")

    names = [k for k in metrics if not k.startswith("_")]
    mcols = ", ".join(f"COALESCE({c}, -1)" if c == "days_since_last" else c for c in names)
    theirs = copy_binary(
        f"SELECT {mcols} FROM loyalty_customermetrics WHERE scoring_run_id = {run.pk} ORDER BY customer_id",
        names,
        ["i8", "i8", "i4", "f8", "f8", "f8", "i2", "i2", "i4", "f8"],
    )
    order = np.argsort(metrics["customer_id"])
    differing = np.zeros(n, dtype=bool)
    for name in names:
        differing |= metrics[name][order] != theirs[name].astype(metrics[name].dtype)
    print(f"check: {n - int(differing.sum()):,} of {n:,} customers equal the product's metrics in every field")

    sorted_d, sorted_score, revenue_order = metrics["_vectors"]
    with transaction.atomic(), connection.cursor() as cursor:
        tune_transaction(cursor)
        cursor.execute("CREATE TEMP TABLE vec (run_id bigint, activity bytea, score bytea, revenue_order bytea)")
        for column in ("activity", "score", "revenue_order"):  # floats do not compress: no pglz attempt
            cursor.execute(f"ALTER TABLE vec ALTER COLUMN {column} SET STORAGE EXTERNAL")
        started = time.perf_counter()
        cursor.execute(
            "INSERT INTO vec VALUES (%s, %s, %s, %s)",
            [run.pk, sorted_d.tobytes(), sorted_score.tobytes(), revenue_order.tobytes()],
        )
        vectors = time.perf_counter() - started
        cursor.execute("SELECT pg_total_relation_size('vec')")
        vector_bytes = cursor.fetchone()[0]
        transaction.set_rollback(True)
    print(
        f"write the run's vectors (sorted activity, sorted score, revenue order; bytea): {vectors:.2f} s, "
        f"{vector_bytes:,} bytes = {vector_bytes / n:.1f} bytes per customer"
    )
    total = read + computed + vectors
    print(
        f"read + compute + vectors: {total:.2f} s = {total / full:.2f} of the product's full run "
        f"({total / n * 1e6:.2f} us per customer)"
    )
    for r in ScoringRun.objects.filter(scoring_model=model):
        scoring_run_delete(run=r)
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM loyalty_scoringstate WHERE scoring_model_id = %s", [model.pk])
    model.delete()


if __name__ == "__main__":
    main()
