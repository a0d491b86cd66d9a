"""Storage per row on PostgreSQL: heap and index bytes of the tables that grow with customers and time.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/premier_bench python bench/storage.py [--customers 50000]

Needs a migrated database. Seeds `--customers` demo customers if there are fewer, rebuilds the rollups if they
are empty, runs a scoring run of the default model if no scoring state exists (so CustomerMetrics and
ScoringState have rows), compacts each table (VACUUM FULL: the figures are those of freshly written tables, no
bloat left by earlier benches), then prints per table: exact row count, heap (with TOAST), indexes, total and
bytes per row. docs/scaling.md multiplies these.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402

from demo.data import demo_data_generate  # noqa: E402
from loyalty.models import Customer  # noqa: E402
from loyalty.segmentation.models import RevenueDayRollup, ScoringState  # noqa: E402
from loyalty.segmentation.services.rollups import rollups_rebuild  # noqa: E402
from loyalty.segmentation.services.scoring import (  # noqa: E402
    scoring_model_default,
    scoring_run_create,
    scoring_run_execute,
)

TABLES = [
    "loyalty_customer",
    "loyalty_interaction",
    "loyalty_revenueentry",
    "loyalty_interactiondayrollup",
    "loyalty_revenuedayrollup",
    "loyalty_scoringstate",
    "loyalty_customermetrics",
    "loyalty_segmentmember",
    "loyalty_membership",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=50_000)
    args = parser.parse_args()
    if not settings.IS_POSTGRES:
        sys.exit("Set DATABASE_URL to a PostgreSQL database.")
    if Customer.objects.count() < args.customers:
        print(f"seeded {demo_data_generate(customers=args.customers, seed=42)}")
    if not RevenueDayRollup.objects.exists():
        print(f"rollups rebuilt: {rollups_rebuild()}")
    if not ScoringState.objects.exists():
        started = time.monotonic()
        run = scoring_run_create(scoring_model=scoring_model_default(), as_of=datetime.now(UTC), enqueue=False)
        run = scoring_run_execute(run_id=run.pk)
        print(f"scoring run {run.pk}: {run.status} in {time.monotonic() - started:.1f}s")
    with connection.cursor() as cursor:
        print(
            f"{'table':<32} {'rows':>12} {'heap MB':>9} {'index MB':>9} {'total MB':>9} {'B/row':>7} {'idx B/row':>9}"
        )
        for table in TABLES:
            cursor.execute("SELECT to_regclass(%s)", [table])
            if cursor.fetchone()[0] is None:
                continue
            cursor.execute(f"VACUUM FULL ANALYZE {table}")
            # Partitioned tables (CustomerMetrics): sum over the partitions.
            cursor.execute(
                "SELECT COALESCE(SUM(pg_table_size(r)), 0), COALESCE(SUM(pg_indexes_size(r)), 0) "
                "FROM (SELECT relid AS r FROM pg_partition_tree(%s) WHERE isleaf "
                "UNION SELECT %s::regclass) t",
                [table, table],
            )
            heap, index = cursor.fetchone()
            cursor.execute(f"SELECT count(*) FROM {table}")
            rows = cursor.fetchone()[0]
            per_row = (heap + index) / rows if rows else 0
            print(
                f"{table:<32} {rows:>12,} {heap / 2**20:>9.1f} {index / 2**20:>9.1f} {(heap + index) / 2**20:>9.1f} "
                f"{per_row:>7.0f} {index / rows if rows else 0:>9.0f}"
            )


if __name__ == "__main__":
    main()
