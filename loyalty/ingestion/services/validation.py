"""The one validator of customer data, shared by the ingestion API and the file import.

Rows are described once (TypedDicts with constraints, below): the API's request schemas use them, so the
OpenAPI document shows them, and `rows_validate` checks file rows with the same types. On top of the types,
`rows_validate` checks what a single field cannot: status and churned_at agree, and no external id appears
twice in one batch or file. References to customers are checked by the ingest service against the database.

Every problem is a `RowError(position, field, message)`; `position` is the row's index in an API batch or its
line number in a file, so the caller can name it (`rows.3.amount` or `line 5: amount: ...`).
"""

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal, NotRequired

from pydantic import AfterValidator, AwareDatetime, Field, StringConstraints, TypeAdapter, ValidationError
from typing_extensions import TypedDict

MAX_BATCH_ROWS = 10_000
MAX_REPORTED_ERRORS = 1000


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("NUL characters are not allowed.")
    return value


def _utc(value: datetime) -> datetime:
    if not 1900 <= value.year <= 2100:
        raise ValueError("The year must be between 1900 and 2100.")
    return value.astimezone(UTC)


def _plausible_day(value: date) -> date:
    if not 1900 <= value.year <= 2100:
        raise ValueError("The year must be between 1900 and 2100.")
    return value


def _json_safe(value: dict) -> dict:
    if "\\u0000" in json.dumps(value):
        raise ValueError("NUL characters are not allowed.")
    return value


NoNul = AfterValidator(_no_nul)
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_utc)]
Day = Annotated[date, AfterValidator(_plausible_day)]

ExternalId = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=64),
    NoNul,
    Field(description="Stable id from the source system (1-64 characters); rows are upserted by it."),
]
CustomerRef = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=64),
    NoNul,
    Field(description="external_id of an existing customer."),
]
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


_KEPT = " Omitted: the stored value is kept; null: cleared."


class CustomerRow(TypedDict):
    """An upsert by external_id: an optional field that a row omits keeps its stored value (a new customer gets
    the default), an explicit null clears it. Omitting status (and churned_at) keeps the customer's status."""

    external_id: ExternalId
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), NoNul]
    email: NotRequired[
        Annotated[str, StringConstraints(strip_whitespace=True, max_length=254), NoNul, Field(description=_KEPT)] | None
    ]
    phone: NotRequired[
        Annotated[str, StringConstraints(strip_whitespace=True, max_length=32), NoNul, Field(description=_KEPT)] | None
    ]
    birth_year: NotRequired[Annotated[int, Field(ge=1900, le=2100, description=_KEPT)] | None]
    region: NotRequired[
        Annotated[str, StringConstraints(strip_whitespace=True, max_length=64), NoNul, Field(description=_KEPT)] | None
    ]
    attributes: NotRequired[Annotated[dict[str, Any], AfterValidator(_json_safe), Field(description=_KEPT)] | None]
    joined_at: Annotated[UtcDatetime, Field(description="Customer since (ISO 8601 with a UTC offset).")]
    status: NotRequired[Literal["active", "churned"]]
    churned_at: NotRequired[UtcDatetime | None]


class RevenueRow(TypedDict):
    external_id: ExternalId
    customer_external_id: CustomerRef
    period: Annotated[Day, Field(description="Day the revenue belongs to (billing lines: the month's first day).")]
    amount: Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=2, description="Non-negative amount.")]
    currency: NotRequired[Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$"), NoNul]]
    kind: NotRequired[Annotated[str, StringConstraints(strip_whitespace=True, max_length=32), NoNul]]


class InteractionRow(TypedDict):
    external_id: ExternalId
    customer_external_id: CustomerRef
    channel: Annotated[
        Literal["phone", "online", "store", "email", "social", "app", "concierge", "event"],
        Field(description="Contact channel."),
    ]
    occurred_at: Annotated[UtcDatetime, Field(description="When it happened (ISO 8601 with a UTC offset).")]
    kind: NotRequired[Annotated[str, StringConstraints(strip_whitespace=True, max_length=64), NoNul]]


ROW_TYPES: dict[str, type] = {"customers": CustomerRow, "revenue": RevenueRow, "interactions": InteractionRow}
KINDS = tuple(ROW_TYPES)
_ADAPTERS = {kind: TypeAdapter(list[row_type]) for kind, row_type in ROW_TYPES.items()}

REQUIRED_COLUMNS = {kind: frozenset(row_type.__required_keys__) for kind, row_type in ROW_TYPES.items()}
ALL_COLUMNS = {kind: frozenset(row_type.__annotations__) for kind, row_type in ROW_TYPES.items()}


@dataclass(frozen=True)
class RowError:
    position: int  # index in the API batch, line number in a file
    field: str
    message: str


class RowsRejected(Exception):
    """The batch or file has bad rows; nothing was written."""

    def __init__(self, errors: list[RowError], total: int | None = None):
        self.errors = errors
        self.total = total if total is not None else len(errors)
        super().__init__(f"{self.total} invalid row(s)")


def _pydantic_errors(exc: ValidationError, positions: Sequence[int]) -> list[RowError]:
    errors = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = error["loc"]
        index = loc[0] if loc and isinstance(loc[0], int) else 0
        field = ".".join(str(part) for part in loc[1:]) or "__row__"
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "Unknown field."
        errors.append(RowError(positions[index], field, message))
    return errors


# Dates and times a row may carry, per kind: more than settings.INGEST_FUTURE_TOLERANCE_HOURS after now is refused.
DATED_FIELDS = {"customers": ("joined_at", "churned_at"), "revenue": ("period",), "interactions": ("occurred_at",)}


def future_limit() -> datetime:
    """The latest moment a row may carry: now plus settings.INGEST_FUTURE_TOLERANCE_HOURS (default 24)."""
    from django.conf import settings
    from django.utils import timezone

    return timezone.now() + timedelta(hours=float(getattr(settings, "INGEST_FUTURE_TOLERANCE_HOURS", 24)))


def _future_errors(kind: str, row: dict, position: int, limit: datetime) -> list[RowError]:
    errors = []
    for name in DATED_FIELDS[kind]:
        value = row.get(name)
        if value is None:
            continue
        late = value > limit if isinstance(value, datetime) else value > limit.date()
        if late:
            errors.append(
                RowError(
                    position,
                    name,
                    f"{value.isoformat()} is in the future: at most {limit.strftime('%Y-%m-%dT%H:%M')}Z "
                    f"(now plus the tolerance) is accepted.",
                )
            )
    return errors


def _plainly_good(kind: str, rows: Sequence[dict], limit: datetime) -> bool:
    """Interactions or revenue: no repeated external id and no date past the limit, checked in bulk (the usual
    batch). False: the row-by-row check below names the problems."""
    if len({row["external_id"] for row in rows}) != len(rows):
        return False
    (dated,) = DATED_FIELDS[kind]
    latest = max((row[dated] for row in rows), default=None)
    return latest is None or latest <= (limit if isinstance(latest, datetime) else limit.date())


def rows_check(kind: str, rows: Sequence[dict], positions: Sequence[int]) -> list[RowError]:
    """Checks beyond single fields on rows that passed the type check (dicts with typed values)."""
    errors: list[RowError] = []
    seen: dict[str, int] = {}
    limit = future_limit()
    if kind != "customers" and _plainly_good(kind, rows, limit):
        return errors
    for row, position in zip(rows, positions, strict=True):
        ext = row["external_id"]
        first = seen.setdefault(ext, position)
        if first != position:
            errors.append(RowError(position, "external_id", f"Duplicate external_id {ext!r}: also at {first}."))
        errors += _future_errors(kind, row, position, limit)
        if kind == "customers":
            status, churned_at = row.get("status", "active"), row.get("churned_at")
            if status == "churned" and churned_at is None:
                errors.append(RowError(position, "churned_at", "A churned customer needs churned_at."))
            elif status == "active" and churned_at is not None:
                errors.append(RowError(position, "churned_at", "An active customer has no churned_at."))
            email = row.get("email")
            if email and ("@" not in email or "." not in email.rpartition("@")[2] or " " in email):
                errors.append(RowError(position, "email", "Enter a valid email address."))
    return errors


RefsCheck = Callable[[Sequence[dict], Sequence[int]], list[RowError]]


def rows_validate(
    kind: str, raw_rows: Sequence[dict], positions: Sequence[int] | None = None, refs_check: RefsCheck | None = None
) -> list[dict]:
    """Type-check and check `raw_rows` (dicts of JSON values or strings). Returns typed rows or raises
    RowsRejected with every problem found. When some rows fail the type check, the other rows are still
    checked (duplicates, status, and with `refs_check` their customer references), so one answer names every
    bad row. On the good path references are checked by the writer (set-based)."""
    positions = positions if positions is not None else range(len(raw_rows))
    adapter = _ADAPTERS[kind]
    try:
        rows = adapter.validate_python(raw_rows)
    except ValidationError as exc:
        errors = _pydantic_errors(exc, positions)
        bad = {error.position for error in errors}
        good = [(raw, pos) for raw, pos in zip(raw_rows, positions, strict=True) if pos not in bad]
        if good:
            good_rows = adapter.validate_python([raw for raw, _ in good])
            good_positions = [pos for _, pos in good]
            errors += rows_check(kind, good_rows, good_positions)
            if refs_check is not None and kind != "customers":
                errors += refs_check(good_rows, good_positions)
        errors.sort(key=lambda error: error.position)
        raise RowsRejected(errors[:MAX_REPORTED_ERRORS], total=len(errors)) from None
    errors = rows_check(kind, rows, positions)
    if errors:
        raise RowsRejected(errors[:MAX_REPORTED_ERRORS], total=len(errors))
    return rows


def errors_as_fields(errors: Sequence[RowError], prefix: str = "rows") -> dict[str, list[str]]:
    """API form: {"rows.3.amount": ["..."]}."""
    fields: dict[str, list[str]] = {}
    for error in errors:
        fields.setdefault(f"{prefix}.{error.position}.{error.field}", []).append(error.message)
    return fields
