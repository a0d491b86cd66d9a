"""Scoring and segmentation benchmark on PostgreSQL, with DuckDB as the reference.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/premier_h4 python bench/segmentation.py [--customers 1000000]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/premier_h4 python bench/segmentation.py \
        --sizes 250000,500000,1000000

With --sizes, each size runs in a process of its own on the database `<name>_<size>` (premier_h4_250000, ...),
seeded if needed, and the bench prints time per customer at each size and the growth from the smallest to the
largest (target: at most 1.25).

Needs a migrated database. Seeds `--customers` with `manage.py seed_demo` (about 20 interactions per customer,
12 monthly revenue lines, history ending --as-of) unless the database already holds that many customers.
Then prints:
  1. rollup rebuild from every raw row (one-off; ingestion keeps rollups current afterwards);
  2. first scoring run (builds the per-customer incremental state from the rollups, writes all metrics);
  3. full scoring run: every customer rescored and 1,000,000 CustomerMetrics rows written (state current);
  4. one new day of interactions (1/365 of the stored ones) added to the rollups as ingestion adds them
     (timed on its own), then the incremental scoring run the day after (state rolled forward with that day's
     rows only, all metrics written);
  5. segment run "top 100,000 by revenue with engagement >= 60", members written;
  6. DuckDB computing the same metrics (as of the same day) and the same top 100,000 straight from the raw
     rows, exported once from PostgreSQL (export and load not timed); ratio ours / DuckDB, and a check
     that DuckDB's metrics equal ours, every field exactly, for every customer;
  7. the ratios against the targets (incremental / full <= 0.5, full / DuckDB <= 1.0, segment / full <= 0.15)
     and the bytes stored per customer per run (the run's metrics partition with its key) and per day (a daily
     run plus the bench segment's members).
The new day's interactions and the bench's runs are deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402

from core.sql import day_number  # noqa: E402
from loyalty.ingestion.services.ingest import ROLLUP_CELL, ROLLUP_CELL_COLUMNS  # noqa: E402
from loyalty.models import Customer, ScoringModel, ScoringRun, SegmentRun  # noqa: E402
from loyalty.segmentation.services.rollups import rollups_apply_deltas, rollups_rebuild, rollups_refresh_interactions  # noqa: E402
from loyalty.segmentation.services.scoring import (  # noqa: E402
    ACTIVITY_SCALE,
    CONTACT,
    DEFAULT_CHANNEL_WEIGHTS,
    SCORE_SCALE,
    scoring_model_create,
    scoring_run_create,
    scoring_run_delete,
    scoring_run_execute,
)
from loyalty.segmentation.services.segments import (  # noqa: E402
    segment_create,
    segment_run_create,
    segment_run_execute,
    segment_runs_delete,
)

TOP_N = 100_000
FULL = "full scoring run (every customer rescored, metrics written)"
INCREMENTAL = "incremental rescoring after one new day"
SEGMENT = "segment run: top 100,000 by revenue with engagement >= 60"
DUCK = "DuckDB: same metrics from the raw rows"
TARGETS = [  # (name, numerator, denominator, at most)
    ("incremental / full", INCREMENTAL, FULL, 0.5),
    ("full / DuckDB", FULL, DUCK, 1.0),
    ("segment run / full", SEGMENT, FULL, 0.15),
]
GROWTH_TARGET = 1.25


def timed(label: str, fn, results: dict):
    with connection.cursor() as cursor:
        cursor.execute("CHECKPOINT")  # each step starts clean instead of paying for the previous step's writes
    started = time.perf_counter()
    value = fn()
    results[label] = time.perf_counter() - started
    print(f"  {label:<62} {results[label]:8.2f} s", flush=True)
    return value


def scoring_run(model, as_of: date):
    run = scoring_run_create(
        scoring_model=model, as_of=datetime.combine(as_of, datetime.min.time(), UTC), enqueue=False
    )
    run = scoring_run_execute(run_id=run.pk)
    assert run.status == "succeeded", run.error
    return run


def add_new_day(day: date, per_day: int) -> list[int]:
    """`per_day` interactions on `day` for random customers (the seed's channel mix); returns their customers.
    Their rollup cells are kept in the temporary table bench_added, as ingestion keeps those of a batch."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT min(id), max(id) FROM loyalty_customer")
        lo, hi = cursor.fetchone()
        for delta in ("bench_added", "bench_removed"):
            cursor.execute(f"CREATE TEMP TABLE {delta} ({ROLLUP_CELL_COLUMNS['interactions']})")
        cursor.execute(
            f"""
            WITH t AS (
                INSERT INTO loyalty_interaction (customer_id, channel, occurred_at, kind, external_id)
                SELECT %s + floor(random() * (%s - %s + 1))::bigint,
                       (ARRAY['phone','phone','phone','online','online','store','email','social','app'])
                           [1 + floor(random() * 9)::int],
                       %s::timestamptz + random() * interval '1 day', 'bench', 'BENCH-' || g
                FROM generate_series(1, %s) g
                RETURNING *
            )
            INSERT INTO bench_added SELECT {ROLLUP_CELL["interactions"]} FROM t
            """,
            [lo, hi, lo, datetime.combine(day, datetime.min.time(), UTC), per_day],
        )
        cursor.execute("SELECT DISTINCT customer_id FROM bench_added")
        return [row[0] for row in cursor.fetchall()]


def dbl(value: float) -> str:
    return f"CAST({float(value)!r} AS DOUBLE)"


def relation_bytes(name: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT COALESCE(pg_total_relation_size(to_regclass(%s)), 0)", [name])
        return cursor.fetchone()[0]


def export(sql: str, path: Path) -> None:
    with connection.cursor() as cursor, path.open("w") as out:
        cursor.cursor.copy_expert(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)", out)


def duckdb_reference(model, as_of: date, results: dict, tmp: Path, ours_run: ScoringRun) -> None:
    import duckdb

    export("SELECT id FROM loyalty_customer", tmp / "customers.csv")
    export(
        "SELECT customer_id, channel, occurred_at AT TIME ZONE 'UTC' FROM loyalty_interaction "
        "WHERE external_id NOT LIKE 'BENCH-%'",
        tmp / "interactions.csv",
    )
    export("SELECT customer_id, period, amount FROM loyalty_revenueentry", tmp / "revenue.csv")
    export(
        "SELECT customer_id, revenue_minor, revenue_rank, engagement_score, channels_used, active_weeks, "
        "revenue_percentile, engagement_percentile, decayed_activity, days_since_last "
        f"FROM loyalty_customermetrics WHERE scoring_run_id = {ours_run.pk}",
        tmp / "ours.csv",
    )
    db = duckdb.connect()
    db.execute("SET threads = 2")
    db.execute(f"CREATE TABLE customers AS SELECT * FROM read_csv('{tmp}/customers.csv', columns={{'id': 'BIGINT'}})")
    db.execute(
        f"CREATE TABLE interactions AS SELECT * FROM read_csv('{tmp}/interactions.csv', "
        "columns={'customer_id': 'BIGINT', 'channel': 'VARCHAR', 'occurred_at': 'TIMESTAMP'})"
    )
    db.execute(
        f"CREATE TABLE revenue AS SELECT * FROM read_csv('{tmp}/revenue.csv', "
        "columns={'customer_id': 'BIGINT', 'period': 'DATE', 'amount': 'DECIMAL(14,2)'})"
    )
    db.execute(
        f"CREATE TABLE ours AS SELECT * FROM read_csv('{tmp}/ours.csv', columns={{'customer_id': 'BIGINT', "
        "'revenue_minor': 'BIGINT', 'revenue_rank': 'BIGINT', 'engagement_score': 'DOUBLE', "
        "'channels_used': 'INTEGER', 'active_weeks': 'INTEGER', 'revenue_percentile': 'DOUBLE', "
        "'engagement_percentile': 'DOUBLE', 'decayed_activity': 'DOUBLE', 'days_since_last': 'INTEGER'})"
    )
    t = day_number(as_of)
    k = 0.6931471805599453 / model.half_life_days
    weights = " ".join(f"WHEN '{c}' THEN {dbl(w)}" for c, w in DEFAULT_CHANNEL_WEIGHTS.items())
    contact = ", ".join(f"'{c}'" for c in CONTACT)
    b, f, r = model.breadth_weight, model.frequency_weight, model.recency_weight
    tw = (t + 3) // 7
    metrics_sql = f"""
        CREATE OR REPLACE TABLE duck_metrics AS
        WITH raw AS (
            SELECT customer_id, channel, date_diff('day', DATE '1970-01-01', CAST(occurred_at AS DATE)) AS dn
            FROM interactions),
        act AS (
            SELECT customer_id,
                   SUM((CASE channel {weights} ELSE 0 END) * exp(CAST(dn - {t} AS DOUBLE) * {dbl(k)})) AS d,
                   COUNT(DISTINCT (dn + 3) // 7) FILTER (WHERE (dn + 3) // 7 > {tw - 13}) AS weeks,
                   COUNT(DISTINCT channel) FILTER (WHERE channel IN ({contact}) AND dn > {t - 90}) AS ch,
                   MAX(dn) AS last
            FROM raw WHERE dn <= {t} GROUP BY customer_id),
        rev AS (
            SELECT customer_id, SUM(CAST(round(amount * 100) AS BIGINT)) AS rev FROM revenue
            WHERE date_diff('day', DATE '1970-01-01', period) > {t - 365}
              AND date_diff('day', DATE '1970-01-01', period) <= {t}
            GROUP BY customer_id),
        base AS (
            SELECT c.id AS customer_id, coalesce(rev.rev, 0) AS rev, coalesce(act.d, 0) AS d,
                   coalesce(act.weeks, 0) AS weeks, coalesce(act.ch, 0) AS ch, {t} - act.last AS dsl
            FROM customers c LEFT JOIN act ON act.customer_id = c.id LEFT JOIN rev ON rev.customer_id = c.id),
        q AS (
            -- Quantized as the product does (ACTIVITY_SCALE, SCORE_SCALE): ties do not depend on summation order.
            SELECT * REPLACE (floor(d * {dbl(ACTIVITY_SCALE)} + {dbl(0.5)}) / {dbl(ACTIVITY_SCALE)} AS d) FROM base),
        s2 AS (
            SELECT *, row_number() OVER (ORDER BY rev DESC, customer_id) AS rev_rank,
                   {dbl(100)} * percent_rank() OVER (ORDER BY rev) AS rev_pct,
                   percent_rank() OVER (ORDER BY d) AS d_pct FROM q),
        s3 AS (
            SELECT *, floor(least({dbl(100)}, {dbl(100)} * ({dbl(b)} * ch / {dbl(6)} + {dbl(f)} * weeks / {dbl(13)}
                   + {dbl(r)} * d_pct) / {dbl(b + f + r)}) * {dbl(SCORE_SCALE)} + {dbl(0.5)}) / {dbl(SCORE_SCALE)}
                   AS score FROM s2)
        SELECT *, {dbl(100)} * percent_rank() OVER (ORDER BY score) AS eng_pct FROM s3
    """
    timed("DuckDB: same metrics from the raw rows", lambda: db.execute(metrics_sql), results)
    top_sql = (
        "CREATE OR REPLACE TABLE duck_top AS SELECT customer_id, row_number() OVER "
        "(ORDER BY rev DESC, customer_id) AS rk FROM duck_metrics WHERE score >= 60 "
        f"ORDER BY rev DESC, customer_id LIMIT {TOP_N}"
    )
    timed("DuckDB: top 100,000 by revenue with engagement >= 60", lambda: db.execute(top_sql), results)
    mismatches = db.execute(
        "SELECT count(*) FROM duck_metrics d FULL JOIN ours o USING (customer_id) WHERE d.rev IS DISTINCT FROM "
        "o.revenue_minor OR d.rev_rank IS DISTINCT FROM o.revenue_rank OR d.ch IS DISTINCT FROM o.channels_used "
        "OR d.weeks IS DISTINCT FROM o.active_weeks OR d.score IS DISTINCT FROM o.engagement_score "
        "OR d.rev_pct IS DISTINCT FROM o.revenue_percentile OR d.eng_pct IS DISTINCT FROM o.engagement_percentile "
        "OR d.d IS DISTINCT FROM o.decayed_activity OR d.dsl IS DISTINCT FROM o.days_since_last"
    ).fetchone()[0]
    total = db.execute("SELECT count(*) FROM duck_metrics").fetchone()[0]
    results["mismatches"] = mismatches
    print(
        f"  check: {total - mismatches:,} of {total:,} customers have exactly the same metrics (every field) "
        f"in DuckDB and ours; {mismatches} differ"
    )


def run_sizes(sizes: list[int], argv: list[str], results_dir: str | None) -> None:
    """Each size in a process of its own on `<database>_<size>`; then growth per customer."""
    base = os.environ["DATABASE_URL"].rstrip("/")
    rest, i = [], 0
    while i < len(argv):
        if argv[i] in ("--sizes", "--results-dir"):
            i += 2
            continue
        if not argv[i].startswith(("--sizes=", "--results-dir=")):
            rest.append(argv[i])
        i += 1
    per_size = {}
    results_dir = Path(results_dir or tempfile.mkdtemp())
    for size in sizes:
        out = results_dir / f"{size}.json"
        if out.exists():
            print(f"\n=== {size:,} customers: figures of an earlier run of this bench ({out}) ===")
        else:
            env = {**os.environ, "DATABASE_URL": f"{base}_{size}"}
            print(f"\n=== {size:,} customers (database {base.rsplit('/', 1)[1]}_{size}) ===", flush=True)
            subprocess.run(  # noqa: S603 (this script, with the arguments it was given)
                [sys.executable, __file__, *rest, "--customers", str(size), "--json", str(out)], env=env, check=True
            )
        per_size[size] = json.loads(out.read_text())
    print("\n=== growth: time per customer ===")
    steps = [FULL, INCREMENTAL, SEGMENT, DUCK]
    print(f"  {'customers':>10} " + " ".join(f"{name.split(' ')[0] + ' ' + name.split(' ')[1]:>22}" for name in steps))
    for size, results in per_size.items():
        cells = [f"{results[s] / size * 1e6:>17.2f} us/c" if s in results else f"{'-':>22}" for s in steps]
        print(f"  {size:>10,} " + " ".join(cells))
    small, large = min(per_size), max(per_size)
    for step in steps:
        if step in per_size[small] and step in per_size[large]:
            growth = (per_size[large][step] / large) / (per_size[small][step] / small)
            verdict = "met" if growth <= GROWTH_TARGET else "missed"
            print(
                f"  growth {step[:40]:<40} {large:,} / {small:,}: {growth:.2f} (target <= {GROWTH_TARGET}: {verdict})"
            )
    for size, results in per_size.items():
        print(
            f"  {size:,}: bytes per customer per run {results['bytes_per_customer_run']:.1f}, "
            f"per day {results['bytes_per_customer_day']:.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--sizes", type=lambda v: [int(x) for x in v.split(",")], default=None)
    parser.add_argument("--json", default=None, help="Write the figures as JSON to this file.")
    parser.add_argument(
        "--results-dir", default=None, help="With --sizes: keep each size's figures here; sizes found are not rerun."
    )
    parser.add_argument("--as-of", type=date.fromisoformat, default=date(2026, 6, 30))
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no-duckdb", action="store_true")
    parser.add_argument("--keep-rollups", action="store_true", help="Reuse the rollups of an earlier run.")
    args = parser.parse_args()
    if args.sizes:
        run_sizes(args.sizes, sys.argv[1:], args.results_dir)
        return
    assert connection.vendor == "postgresql", "Run on PostgreSQL (set DATABASE_URL)."

    existing = Customer.objects.count()
    if existing < args.customers:
        print(f"Seeding {args.customers - existing:,} customers with seed_demo ...", flush=True)
        started = time.perf_counter()
        call_command("seed_demo", customers=args.customers, seed=args.seed, as_of=args.as_of, no_progress=True)
        print(f"  seeded in {time.perf_counter() - started:.0f} s")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT count(*) FROM loyalty_customer), (SELECT count(*) FROM loyalty_interaction),"
            " (SELECT count(*) FROM loyalty_revenueentry)"
        )
        customers, interactions, revenue = cursor.fetchone()
    print(
        f"Data: {customers:,} customers, {interactions:,} interactions, {revenue:,} revenue entries "
        f"(seed_demo, history ending {args.as_of}); PostgreSQL {connection.pg_version // 10000}"
    )

    results: dict[str, float] = {}
    if not args.keep_rollups:
        timed("rollup rebuild from every raw row (one-off)", rollups_rebuild, results)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE loyalty_interactiondayrollup")
        cursor.execute("ANALYZE loyalty_revenuedayrollup")
    model = scoring_model_create(name=f"bench-{int(time.time())}")
    first = timed(
        "first scoring run (state built from rollups + metrics)", lambda: scoring_run(model, args.as_of), results
    )
    print(f"    steps: {first.timings}")
    full = timed(FULL, lambda: scoring_run(model, args.as_of), results)
    print(f"    steps: {full.timings}")

    new_day = args.as_of + timedelta(days=1)
    per_day = max(1, interactions // 365)
    touched = add_new_day(new_day, per_day)
    print(f"  (added {per_day:,} interactions on {new_day} for {len(touched):,} customers)")

    def day_into_rollups():
        # As ingestion on PostgreSQL does it: the new rows' cells are added to the rollups (an adding upsert).
        with transaction.atomic(), connection.cursor() as cursor:
            rollups_apply_deltas(cursor, kind="interactions", added="bench_added", removed="bench_removed")
            cursor.execute("DROP TABLE bench_added, bench_removed")

    timed("  new day's interactions into the rollups (as ingestion does)", day_into_rollups, results)
    inc = timed(INCREMENTAL, lambda: scoring_run(model, new_day), results)
    print(f"    steps: {inc.timings}")

    segment = segment_create(
        name=f"bench-top-{int(time.time())}",
        rule={"all": [{"field": "engagement_score", "op": "gte", "value": 60}]},
        top_n=TOP_N,
        top_by="revenue_minor",
    )
    seg_run = timed(
        SEGMENT,
        lambda: segment_run_execute(run_id=segment_run_create(segment=segment, scoring_run=inc, enqueue=False).pk),
        results,
    )
    print(
        f"    {seg_run.status}: {seg_run.candidates_count:,} candidates, {seg_run.member_count:,} members, "
        f"steps {seg_run.timings}"
    )
    run_bytes = relation_bytes(f"loyalty_customermetrics_r{inc.pk}")
    members_bytes = relation_bytes(f"loyalty_segmentmember_r{seg_run.pk}")  # the run's partition
    results["bytes_per_customer_run"] = run_bytes / customers
    results["bytes_per_customer_day"] = (run_bytes + members_bytes) / customers
    print(
        f"  stored: {run_bytes:,} bytes for the run's metrics (partition with its key) = "
        f"{results['bytes_per_customer_run']:.1f} bytes per customer per run; with the segment run's members "
        f"({members_bytes:,} bytes) {results['bytes_per_customer_day']:.1f} bytes per customer per day"
    )

    if not args.no_duckdb:
        with tempfile.TemporaryDirectory() as tmp:
            duckdb_reference(model, args.as_of, results, Path(tmp), full)
        seg = results[SEGMENT]
        duck_top = results["DuckDB: top 100,000 by revenue with engagement >= 60"]
        print(f"  ratio segment run / DuckDB top 100,000: {seg / duck_top:.2f}")
    first_run = results["first scoring run (state built from rollups + metrics)"]
    print(f"  ratio first scoring run / full run: {first_run / results[FULL]:.2f}")
    for name, numerator, denominator, limit in TARGETS:
        if numerator in results and denominator in results:
            ratio = results[numerator] / results[denominator]
            verdict = "met" if ratio <= limit else "missed"
            print(f"  ratio {name:<20} {ratio:5.2f}  (target <= {limit}: {verdict})")
    for step in (FULL, INCREMENTAL, SEGMENT):
        print(f"  time per customer, {step[:40]:<40} {results[step] / customers * 1e6:7.2f} us")
    if args.json:
        Path(args.json).write_text(json.dumps(results))

    # Clean up what the bench added.
    segment_runs_delete(run_ids=list(SegmentRun.objects.filter(segment=segment).values_list("id", flat=True)))
    segment.delete()
    for run in ScoringRun.objects.filter(scoring_model=model):
        scoring_run_delete(run=run)
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM loyalty_scoringstate WHERE scoring_model_id = %s", [model.pk])
        cursor.execute("DELETE FROM loyalty_interaction WHERE external_id LIKE 'BENCH-%%'")
    ScoringModel.objects.filter(pk=model.pk).delete()
    rollups_refresh_interactions(customer_ids=touched, date_from=new_day, date_to=new_day)


if __name__ == "__main__":
    main()
