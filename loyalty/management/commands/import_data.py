"""`manage.py import_data {customers,revenue,interactions} FILE [--format csv|jsonl] [--dry-run]`.

All or nothing: the file is parsed and validated completely (same validator as the ingestion API) and written
in one transaction (PostgreSQL: COPY into a staging table, one set-based upsert; CSV files of interactions and
revenue are COPYed as they are and checked in the database first). Any problem aborts the import with a
report that names each bad line, and the database is left as it was.
"""

from __future__ import annotations

import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from loyalty.ingestion.services.files import FORMATS, FileRejected, file_import
from loyalty.ingestion.services.validation import KINDS


class Command(BaseCommand):
    help = "Import customers, revenue or interactions from a CSV or JSON Lines file (all or nothing)."

    def add_arguments(self, parser):
        parser.add_argument("kind", choices=KINDS)
        parser.add_argument("file", type=Path)
        parser.add_argument("--format", choices=FORMATS, default=None, help="Default: from the file name.")
        parser.add_argument("--dry-run", action="store_true", help="Validate and count; write nothing.")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")

    def handle(self, *args, kind: str, file: Path, format: str | None, dry_run: bool, no_progress: bool, **opts):
        started = time.monotonic()
        bars: dict[str, tqdm] = {}
        quiet = no_progress or opts.get("verbosity", 1) < 1

        def progress(stage: str, done: int, total: int) -> None:
            if quiet:
                return
            if stage != "written":
                self.stderr.write(f"{kind}: {done} rows {stage} ({time.monotonic() - started:.1f}s)")
                return
            bar = bars.get(stage)
            if bar is None:
                bar = bars[stage] = tqdm(total=total, desc=f"{kind} writing", unit="row")
            bar.update(done - bar.n)

        try:
            result = file_import(kind=kind, path=file, fmt=format, dry_run=dry_run, progress=progress)
        except FileRejected as rejected:
            raise CommandError(rejected.report()) from None
        finally:
            for bar in bars.values():
                bar.close()
        elapsed = time.monotonic() - started
        verb = "Checked (dry run, nothing written)" if dry_run else "Imported"
        self.stdout.write(
            f"{verb} {result.rows} {kind} rows from {file.name}: {result.created} created, {result.updated} updated, "
            f"{result.unchanged} unchanged in {elapsed:.1f}s."
        )
