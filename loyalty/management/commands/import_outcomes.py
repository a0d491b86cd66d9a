"""Import retention outcomes from a CSV or JSON Lines file, all or nothing.

CSV: a header row with the fields of the ingestion API (external_id, membership_id, programme_id,
customer_external_id, observed_at, outcome, revenue_change, intends_to_stay, supersedes_id,
supersedes_external_id); empty cells are null. JSONL: one object per line. Errors name the file line.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from pydantic import ValidationError

from core.errors import ValidationFailed
from loyalty.retention.models import RetentionOutcome
from loyalty.retention.schemas import OutcomeIn
from loyalty.retention.services.outcomes import OutcomeRow, outcomes_record


def _records(path: Path, fmt: str):
    """(line number, dict) per record."""
    with path.open(newline="", encoding="utf-8") as handle:
        if fmt == "csv":
            reader = csv.DictReader(handle)
            for record in reader:
                yield reader.line_num, {k: (v if v != "" else None) for k, v in record.items() if k}
        else:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield number, exc
                    continue
                yield number, record


CHUNK = 5000


class Command(BaseCommand):
    help = "Import retention outcomes from a CSV or JSONL file (all or nothing; errors name the line)."

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument("--format", choices=["csv", "jsonl"], help="Default: from the file extension.")

    def handle(self, *args, file: Path, format: str | None = None, **options):
        if not file.exists():
            raise CommandError(f"{file} does not exist.")
        fmt = format or ("csv" if file.suffix.lower() == ".csv" else "jsonl")
        rows, labels, errors = [], [], []
        for number, record in _records(file, fmt):
            if isinstance(record, Exception) or not isinstance(record, dict):
                errors.append(f"line {number}: not a JSON object")
                continue
            try:
                parsed = OutcomeIn.model_validate(record)
            except ValidationError as exc:
                for err in exc.errors():
                    field = ".".join(str(p) for p in err["loc"]) or "__all__"
                    errors.append(f"line {number}: {field}: {err['msg']}")
                continue
            rows.append(OutcomeRow.from_mapping(parsed.model_dump()))
            labels.append(f"line {number}")
        if errors:
            raise CommandError("Nothing imported.\n" + "\n".join(errors))
        if not rows:
            raise CommandError("The file holds no outcomes.")
        created = unchanged = 0
        problems: list[str] = []
        try:
            with transaction.atomic():
                # Chunks keep every IN (...) list small; one transaction keeps the import all or nothing, and later
                # chunks see (and may supersede) the rows of earlier ones.
                for start in range(0, len(rows), CHUNK):
                    try:
                        with transaction.atomic():
                            result = outcomes_record(
                                rows=rows[start : start + CHUNK],
                                source=RetentionOutcome.Source.IMPORT,
                                row_labels=labels[start : start + CHUNK],
                            )
                    except ValidationFailed as exc:
                        problems += [f"{key}: {'; '.join(messages)}" for key, messages in exc.fields.items()]
                        continue
                    created += len(result.created)
                    unchanged += len(result.unchanged)
                if problems:
                    raise ValidationFailed("rollback")
        except ValidationFailed as exc:
            raise CommandError("Nothing imported.\n" + "\n".join(problems)) from exc
        self.stdout.write(f"Imported {created} outcomes ({unchanged} unchanged) from {len(rows)} rows.")
