"""`manage.py seed_demo --customers N --seed S`: a deterministic, realistic demo population.

See demo.data for the shape of the data. PostgreSQL generates it in the database (a million
customers and about twenty million interactions in minutes); SQLite writes it in batches from Python.
"""

from __future__ import annotations

import time
from datetime import date

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from demo.data import demo_data_generate
from loyalty.segmentation.services.rollups import rollups_rebuild


class Command(BaseCommand):
    help = "Generate a deterministic demo population (customers, 12 months of revenue and interactions)."

    def add_arguments(self, parser):
        parser.add_argument("--customers", type=int, default=3000, help="How many customers (default 3000).")
        parser.add_argument("--seed", type=int, default=42, help="Random seed: same seed, same population.")
        parser.add_argument(
            "--as-of",
            type=date.fromisoformat,
            default=None,
            help="Last day of the 12-month history (YYYY-MM-DD, default today).",
        )
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")

    def handle(self, *args, customers: int, seed: int, as_of: date | None = None, no_progress: bool = False, **opts):
        if customers < 0:
            raise CommandError("--customers must be zero or more.")
        started = time.monotonic()
        bar = tqdm(
            total=customers,
            unit="cust",
            desc="seed_demo",
            disable=no_progress or customers < 1 or opts.get("verbosity", 1) < 1,
            file=self.stderr._out if hasattr(self.stderr, "_out") else None,
        )

        def progress(stage: str, done: int, total: int) -> None:
            bar.update(done - bar.n)

        try:
            counts = demo_data_generate(customers=customers, seed=seed, as_of=as_of, progress=progress)
        finally:
            bar.close()
        # Scoring reads the rollups, not the raw rows: bring them up to date with what was just written.
        rollups = rollups_rebuild()
        elapsed = time.monotonic() - started
        self.stdout.write(
            f"Created {counts['customers']} customers, {counts['revenue_entries']} revenue entries and "
            f"{counts['interactions']} interactions in {elapsed:.1f}s (seed {seed}); "
            f"rollups rebuilt: {', '.join(f'{k} {v}' for k, v in rollups.items())}."
        )
