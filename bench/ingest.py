"""Ingestion benchmark: rows per second for the file import and for API batches, on PostgreSQL.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/premier_bench python bench/ingest.py [--rows 1000000] [--only file]

Needs a migrated database. Seeds `--customers` demo customers (with their own history) if there are fewer, then:
0. floor: a bare COPY of the same rows (customer ids already resolved) into the same interactions table, with
   its indexes and constraints (the customer foreign key is checked at commit), plus the commit; the rows are
   deleted again and the table vacuumed. Measured before the file import, between the two paths and after the
   API batches; the fastest of the three is the floor (the harder target); each path's ratio to the mean of
   the two measurements on either side of it is printed as well;
1. file import: writes a CSV of `--rows` new interactions and runs the import service on it in one transaction
   (COPY of the raw file, one INSERT checked in the same scan, the batch recorded in the outbox, commit);
   then, timed on its own, the deferred rollup work (`rollups_apply_pending`: what the batch's task, or the next
   scoring run, does after commit: the rollup upsert and the stale marks);
2. API: posts `--api-rows` new interactions in batches of 10,000 through the whole Django stack (API key auth,
   JSON parsing, validation, staging, insert), timing the requests only (bodies are encoded beforehand); then
   the deferred rollup work of those batches, timed on its own. Each request is preceded by a floor of its own
   size (a bare COPY of as many other rows plus its commit), so that the API path also has a floor that saw
   the same load at the same moments (the machine's load moves the 1 M floor by 2x within a run); these rows
   are deleted after the API path. No worker runs during the bench (the outbox publishes the tasks to the
   configured broker), so the deferred work is measured apart, not hidden.
`--only file` runs the floor, the file import and the floor again, nothing else (a shorter run for the file import).
The rows it adds are deleted at the end (and the rollups of their customers recomputed).
Targets (issue 16): file import at least 0.8 of the floor's rows/s, API batches at least 0.5 (printed against
the fastest 1 M floor and against the interleaved floor of the batch size).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("API_THROTTLE_AUTH", "1000000/min")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test import Client  # noqa: E402

from accounts.services import api_key_create  # noqa: E402
from demo.data import demo_data_generate  # noqa: E402
from loyalty.ingestion.services.files import file_import  # noqa: E402
from loyalty.models import Customer, Interaction  # noqa: E402
from loyalty.segmentation.services.rollups import rollups_apply_pending, rollups_refresh_interactions  # noqa: E402

CHANNELS = ["phone", "online", "store", "email", "social", "app"]


def rows(prefix: str, count: int, customers: list[str]):
    for n in range(count):
        yield (
            f"{prefix}{n}",
            customers[(n * 7919) % len(customers)],
            CHANNELS[n % 6],
            f"2025-{1 + n % 12:02d}-{1 + n % 28:02d}T{n % 24:02d}:{n % 60:02d}:00Z",
            "bench",
        )


def floor(prefix: str, count: int, customers: list[str]) -> float:
    """Seconds for a bare COPY of `count` rows into loyalty_interaction and its commit; the rows are removed."""
    (text,) = copy_lines(prefix, count, customers, count)
    try:
        return copy_commit(text)
    finally:
        remove(prefix)


def remove(prefix: str) -> None:
    """Delete the bare COPY's rows of `prefix` and vacuum, so that the next measurement finds the table as before."""
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {Interaction._meta.db_table} WHERE external_id LIKE %s", [f"{prefix}%"])
        cursor.execute(f"VACUUM ANALYZE {Interaction._meta.db_table}")


def copy_lines(prefix: str, count: int, customers: list[str], batch: int) -> list[str]:
    """COPY text of `count` rows (customer ids resolved), in chunks of `batch` rows."""
    ids = dict(Customer.objects.filter(external_id__in=customers).values_list("external_id", "id"))
    lines = [
        f"{ext}\t{ids[cust]}\t{channel}\t{at}\t{kind}\n"
        for ext, cust, channel, at, kind in rows(prefix, count, customers)
    ]
    return ["".join(lines[start : start + batch]) for start in range(0, count, batch)]


def copy_commit(text: str) -> float:
    """Seconds for a bare COPY of `text` into loyalty_interaction and its commit (the rows stay until the end)."""
    started = time.monotonic()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.copy_expert(
            f"COPY {Interaction._meta.db_table} (external_id, customer_id, channel, occurred_at, kind) FROM STDIN",
            io.StringIO(text),
        )
    return time.monotonic() - started


def deferred(count: int, elapsed: float) -> None:
    """Time the rollup work that ingestion leaves to the batch's task after commit, and print it apart."""
    started = time.monotonic()
    batches = rollups_apply_pending()
    later = time.monotonic() - started
    print(
        f"  deferred rollup work (the batches' task after commit, or the next scoring run): {batches} batch(es) "
        f"in {later:.1f}s; ingest and deferred work together {count / (elapsed + later):,.0f} rows/s"
    )


def verdict(ratio: float, target: float) -> str:
    return f"{ratio:.2f} of the floor (target {target}: {'met' if ratio >= target else 'missed'})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="Interaction rows in the imported file.")
    parser.add_argument("--api-rows", type=int, default=1_000_000, help="Interaction rows sent to the API.")
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument(
        "--only",
        choices=["file"],
        help="file: only the file import, between two floors (the fastest of the two is the floor).",
    )
    args = parser.parse_args()
    if not settings.IS_POSTGRES:
        sys.exit("Set DATABASE_URL to a PostgreSQL database (the benchmark measures the PostgreSQL path).")

    have = Customer.objects.count()
    if have < args.customers:
        started = time.monotonic()
        counts = demo_data_generate(customers=args.customers, seed=42)
        print(f"seeded {counts} in {time.monotonic() - started:.1f}s")
    customers = list(Customer.objects.order_by("id").values_list("external_id", flat=True)[: args.customers])
    print(f"customers: {len(customers)}, interactions already stored: {Interaction.objects.count()}")
    run = str(int(time.time()))

    floors = []
    try:
        # 0. Floor, first measurement.
        floors.append(floor(f"BZ{run}a-", args.rows, customers))
        print(f"floor (bare COPY + commit): {args.rows:,} rows in {floors[-1]:.1f}s = {args.rows / floors[-1]:,.0f}/s")

        # 1. File import.
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "interactions.csv"
            with path.open("w") as f:
                f.write("external_id,customer_external_id,channel,occurred_at,kind\n")
                for row in rows(f"BF{run}-", args.rows, customers):
                    f.write(",".join(row) + "\n")
            started = time.monotonic()
            result = file_import(kind="interactions", path=path)
            elapsed = time.monotonic() - started
        assert result.created == args.rows, result
        file_rate = args.rows / elapsed
        print(f"file import: {args.rows:,} rows in {elapsed:.1f}s = {file_rate:,.0f} rows/s")
        deferred(args.rows, elapsed)

        # 0'. Floor, second measurement (between the two paths, so that each has one on either side).
        floors.append(floor(f"BZ{run}m-", args.rows, customers))
        print(f"floor (bare COPY + commit): {args.rows:,} rows in {floors[-1]:.1f}s = {args.rows / floors[-1]:,.0f}/s")
        if args.only == "file":
            floor_rate = args.rows / min(floors)
            print(f"floor: {floor_rate:,.0f} rows/s (the fastest of {', '.join(f'{f:.1f}s' for f in floors)})")
            print(f"file import / floor: {verdict(file_rate / floor_rate, 0.8)}")
            print(
                "against the floors measured on either side (their mean): file import "
                f"{file_rate * (floors[0] + floors[1]) / 2 / args.rows:.2f}"
            )
            return

        # 2. API batches of 10,000.
        _, key = api_key_create(name=f"bench {run}", scopes=["ingest"])
        client = Client(headers={"X-API-Key": key})
        # A running server has imported its URLconf and views long before (about 1.5 s of imports on the first
        # request of a process): one request that writes nothing first, untimed.
        assert client.get("/api/v1/ingest/whoami").status_code == 200
        batch, bodies, current = 10_000, [], []
        for ext, cust, channel, at, kind in rows(f"BA{run}-", args.api_rows, customers):
            current.append(
                {"external_id": ext, "customer_external_id": cust, "channel": channel, "occurred_at": at, "kind": kind}
            )
            if len(current) == batch:
                bodies.append(json.dumps({"rows": current}))
                current = []
        if current:
            bodies.append(json.dumps({"rows": current}))
        # Each request is preceded by the floor of its own size: a bare COPY of as many rows (other ids, the
        # same customers) plus its commit, so that both see the same load and the same table size.
        floor_lines = copy_lines(f"BY{run}-", args.api_rows, customers, batch)
        elapsed = batch_floor = 0.0
        created = 0
        for body, lines in zip(bodies, floor_lines, strict=True):
            batch_floor += copy_commit(lines)
            started = time.monotonic()
            response = client.post("/api/v1/ingest/interactions", body, content_type="application/json")
            elapsed += time.monotonic() - started
            assert response.status_code == 200, response.content[:500]
            created += response.json()["created"]
        assert created == args.api_rows
        remove(f"BY{run}-")
        api_rate = args.api_rows / elapsed
        print(f"API batches: {args.api_rows:,} rows in {len(bodies)} requests, {elapsed:.1f}s = {api_rate:,.0f} rows/s")
        print(
            f"  floor of the batch size, each right before its request (bare COPY of {batch:,} rows + commit): "
            f"{batch_floor:.1f}s in all = {args.api_rows / batch_floor:,.0f} rows/s"
        )
        deferred(args.api_rows, elapsed)

        # 0''. Floor, third measurement (the load of a shared machine drifts).
        floors.append(floor(f"BZ{run}b-", args.rows, customers))
        print(f"floor (bare COPY + commit): {args.rows:,} rows in {floors[-1]:.1f}s = {args.rows / floors[-1]:,.0f}/s")
        floor_rate = args.rows / min(floors)
        print(f"floor: {floor_rate:,.0f} rows/s (the fastest of {', '.join(f'{f:.1f}s' for f in floors)})")
        print(f"file import / floor: {verdict(file_rate / floor_rate, 0.8)}")
        print(f"API batches / floor: {verdict(api_rate / floor_rate, 0.5)}")
        print(f"API batches / the floor of the batch size, interleaved: {verdict(batch_floor / elapsed, 0.5)}")
        # The load of a shared machine moves between the two floor measurements; each path against the one
        # measured next to it, for reading the noise (the verdicts above use the faster floor).
        print(
            f"against the floors measured on either side (their mean): file import "
            f"{file_rate * (floors[0] + floors[1]) / 2 / args.rows:.2f}, "
            f"API batches {api_rate * (floors[1] + floors[2]) / 2 / args.rows:.2f}"
        )
    finally:
        with connection.cursor() as cursor:
            cursor.execute(
                "DELETE FROM loyalty_interaction WHERE external_id LIKE %s RETURNING customer_id", [f"B_{run}-%"]
            )
            touched = sorted({row[0] for row in cursor.fetchall()})
        rollups_refresh_interactions(customer_ids=touched, date_from=date(2025, 1, 1), date_to=date(2025, 12, 31))


if __name__ == "__main__":
    main()
