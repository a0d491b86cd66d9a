"""Writing customer data from integrations: API batches and file imports share this service.

`ingest_rows` takes type-checked rows (see ingest_validation), checks them as a whole (duplicates, status and
churned_at, references to customers) and upserts them by `external_id`, all or nothing, set-based:
- PostgreSQL, the usual feed (every row new, every customer known): interactions and revenue are COPYed
  straight into their table (API batches, `_pg_copy_all_new`) or INSERTed straight from the raw lines of a CSV
  file, checked in the same scan (`ingest_csv_pg`), tagged with a RollupBatch whose rollup cells a task applies
  after commit (outbox; readers of the rollups apply pending batches first). Otherwise the rows are COPYed
  into a temporary staging table, unknown customers are found with one anti-join, one
  `INSERT ... ON CONFLICT (external_id) DO NOTHING` writes the new rows and one
  `UPDATE ... FROM ... WHERE <changed>` the changed ones; rows neither inserted nor updated are unchanged. The
  rollups of that general path follow by deltas of the written rows in the same transaction
  (`rollups_apply_deltas`), after applying the pending batches of the rows it changes.
- Other databases (SQLite): chunks of rows are compared with the stored ones in Python and written with one
  multi-row upsert per chunk; afterwards the rollups of the touched customers and dates are recomputed.
Customers that turned from active to churned are handed to `customers_churned`.
"""

from __future__ import annotations

import io
import itertools
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from string import ascii_uppercase

from django.db import DatabaseError, DataError, IntegrityError, OperationalError, connection, transaction

from loyalty.customers.models import Channel, Customer, Interaction, RevenueEntry
from loyalty.ingestion.services import churn, hand_over
from loyalty.ingestion.services.validation import (
    MAX_BATCH_ROWS,
    MAX_REPORTED_ERRORS,
    RowError,
    RowsRejected,
    future_limit,
    rows_check,
)
from loyalty.segmentation.services import rollups

CHUNK = 5000
# API batches are COPYed as they are formatted: rows per chunk of text, characters per read of the COPY.
COPY_CHUNK_ROWS = 1000
COPY_READ_SIZE = 1 << 16
Progress = Callable[[int], None]


@dataclass
class IngestResult:
    kind: str
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    churned_customer_ids: list[int] = field(default_factory=list)
    dry_run: bool = False

    def as_dict(self) -> dict:
        data = asdict(self)
        data.pop("churned_customer_ids")
        return data


class _DryRun(Exception):
    pass


@dataclass
class _Touched:
    """What the write touched, for the rollup refresh."""

    customer_ids: set[int] = field(default_factory=set)
    first: date | None = None
    last: date | None = None

    def add(self, customer_id: int, day: date | datetime | None) -> None:
        self.customer_ids.add(customer_id)
        if day is None:
            return
        day = day.astimezone(UTC).date() if isinstance(day, datetime) else day
        self.first = day if self.first is None or day < self.first else self.first
        self.last = day if self.last is None or day > self.last else self.last


def ingest_rows(
    *,
    kind: str,
    rows: Sequence[dict],
    positions: Sequence[int] | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
    now: datetime | None = None,
    checked: bool = False,
) -> IngestResult:
    """Upsert type-checked `rows` of `kind` ("customers", "revenue", "interactions") by external_id.

    All or nothing: any bad row raises RowsRejected naming every bad row (by `positions`: batch index or file
    line) and nothing is written. `dry_run` does all the checks and counts, then rolls back. `now` is when the
    feed is processed (default: now): memberships of customers turned churned end then. `checked`: the rows
    come from `rows_validate`, which ran `rows_check` on them already."""
    positions = positions if positions is not None else range(len(rows))
    errors = [] if checked else rows_check(kind, rows, positions)
    if errors:
        raise RowsRejected(errors[:MAX_REPORTED_ERRORS], total=len(errors))
    result = IngestResult(kind=kind, rows=len(rows), dry_run=dry_run)
    if not rows:
        return result
    try:
        with transaction.atomic():
            if connection.vendor == "postgresql":
                touched = _pg_write(kind, rows, positions, result, progress)
            else:
                touched = _generic_write(kind, rows, positions, result, progress)
            if dry_run:
                raise _DryRun()
            _after_write(kind, touched, result, now=now)
            if kind == "customers":
                hand_over.customers_ingested(rows)
    except _DryRun:
        pass
    result.unchanged = result.rows - result.created - result.updated
    return result


def _after_write(kind: str, touched: _Touched, result: IngestResult, *, now: datetime | None = None) -> None:
    if kind == "customers":
        if result.churned_customer_ids:
            churn.customers_churned(customer_ids=sorted(result.churned_customer_ids), now=now)
        return
    if not touched.customer_ids or touched.first is None or touched.last is None:
        return
    # Past a hundred thousand customers a full refresh of the date range is cheaper than a huge id list.
    ids = sorted(touched.customer_ids) if len(touched.customer_ids) <= 100_000 else None
    refresh = rollups.rollups_refresh_interactions if kind == "interactions" else rollups.rollups_refresh_revenue
    refresh(customer_ids=ids, date_from=touched.first, date_to=touched.last)


# --------------------------------------------------------------------------------------------------------------
# Column layout per kind: (column, default for a missing optional field).

COLUMNS: dict[str, list[tuple[str, object]]] = {
    "customers": [
        ("external_id", None),
        ("name", None),
        ("email", ""),
        ("phone", ""),
        ("birth_year", None),
        ("region", ""),
        ("attributes", None),  # {} (a fresh dict each time)
        ("joined_at", None),
        ("status", "active"),
        ("churned_at", None),
    ],
    "revenue": [
        ("external_id", None),
        ("customer_external_id", None),
        ("period", None),
        ("amount", None),
        ("currency", "EUR"),
        ("kind", ""),
    ],
    "interactions": [
        ("external_id", None),
        ("customer_external_id", None),
        ("channel", None),
        ("occurred_at", None),
        ("kind", ""),
    ],
}
# Stored columns compared to decide "updated" versus "unchanged" (customer_id stands for customer_external_id).
COMPARED = {
    "customers": [
        "name",
        "email",
        "phone",
        "birth_year",
        "region",
        "attributes",
        "joined_at",
        "status",
        "churned_at",
    ],
    "revenue": ["customer_id", "period", "amount", "currency", "kind"],
    "interactions": ["customer_id", "channel", "occurred_at", "kind"],
}
# The rollup cell of a row of `t` (PostgreSQL path).
ROLLUP_CELL_COLUMNS = {
    "interactions": "customer_id bigint, day date, channel text",
    "revenue": "customer_id bigint, day date, amount_minor bigint",
}
ROLLUP_CELL = {
    "interactions": "t.customer_id, (t.occurred_at AT TIME ZONE 'UTC')::date, t.channel",
    "revenue": "t.customer_id, t.period, CAST(ROUND(t.amount * 100) AS bigint)",
}
MODELS = {"customers": Customer, "revenue": RevenueEntry, "interactions": Interaction}
DAY_FIELD = {"revenue": "period", "interactions": "occurred_at"}


# Customers: optional fields that a row may omit to keep the stored value ("status" stands for status and
# churned_at together). An explicit null clears the field (its default: "" for text, NULL, {} for attributes).
KEPT_WHEN_OMITTED = {"customers": ("email", "phone", "birth_year", "region", "attributes", "status")}
KEPT_BY = {"churned_at": "status"}


def _values(kind: str, row: dict) -> list:
    """The row's values in COLUMNS order: an omitted field or an explicit null gives the column's default."""
    values = []
    for name, default in COLUMNS[kind]:
        value = row.get(name)
        if value is None:
            value = {} if name == "attributes" else default
        values.append(value)
    return values


def _kept_by(column: str) -> str | None:
    """The field whose presence in a row decides whether `column` is written (None: always written)."""
    name = KEPT_BY.get(column, column)
    return name if name in KEPT_WHEN_OMITTED["customers"] else None


def _chunks(seq: Sequence, size: int) -> Iterable[tuple[int, Sequence]]:
    for start in range(0, len(seq), size):
        yield start, seq[start : start + size]


# --------------------------------------------------------------------------------------------------------------
# PostgreSQL: COPY into a staging table, one set-based upsert.

STAGE_TYPES = {
    "external_id": "text",
    "customer_external_id": "text",
    "name": "text",
    "email": "text",
    "phone": "text",
    "birth_year": "integer",
    "region": "text",
    "attributes": "jsonb",
    "joined_at": "timestamptz",
    "status": "text",
    "churned_at": "timestamptz",
    "period": "date",
    "amount": "numeric(14,2)",
    "currency": "text",
    "kind": "text",
    "channel": "text",
    "occurred_at": "timestamptz",
}


class _CopyStream(io.TextIOBase):
    """A file-like object producing COPY text for COPY from an iterator of lines, a chunk at a time."""

    def __init__(self, lines: Iterable[str], progress: Progress | None, every: int = CHUNK):
        self._lines = iter(lines)
        self._buffer = ""
        self._progress = progress
        self._every = every

    def readable(self) -> bool:
        return True

    def _fill(self) -> bool:
        chunk = list(itertools.islice(self._lines, self._every))
        if chunk and self._progress is not None:
            self._progress(len(chunk))
        self._buffer += "".join(chunk)
        return bool(chunk)

    def read(self, size: int = -1) -> str:
        while (size < 0 or len(self._buffer) < size) and self._fill():
            pass
        if size < 0:
            data, self._buffer = self._buffer, ""
        else:
            data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def readline(self, size: int = -1) -> str:  # pragma: no cover - COPY only calls read()
        return self.read(size)


# COPY's text format: backslash, tab, newline and carriage return are escaped; NULL is \N.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_value(value) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, str):
        return value.translate(_COPY_ESCAPES)
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":")).translate(_COPY_ESCAPES)
    if isinstance(value, date):  # datetimes too
        return value.isoformat()
    return str(value)


def _pg_stage_table(cursor, kind: str) -> None:
    columns_sql = ", ".join(
        [f"{name} {STAGE_TYPES[name]}" for name, _ in COLUMNS[kind]]
        + [f"has_{name} boolean" for name in KEPT_WHEN_OMITTED.get(kind, ())]
    )
    cursor.execute("DROP TABLE IF EXISTS ingest_stage")
    cursor.execute(f"CREATE TEMP TABLE ingest_stage (pos bigint NOT NULL, {columns_sql}) ON COMMIT DROP")


def _pg_stage(cursor, kind: str, rows: Sequence[dict], positions: Sequence[int], progress: Progress | None) -> None:
    names = [name for name, _ in COLUMNS[kind]]
    presence = [f"has_{name}" for name in KEPT_WHEN_OMITTED.get(kind, ())]
    _pg_stage_table(cursor, kind)
    kept = KEPT_WHEN_OMITTED.get(kind, ())
    # Text columns are escaped directly (rows are typed by the validator, so they hold a str or None); any other
    # value goes through _copy_value.
    text = [STAGE_TYPES[name] == "text" for name in names]
    escapes, value = _COPY_ESCAPES, _copy_value

    def lines():
        for position, row in zip(positions, rows, strict=True):
            fields = [str(position)]
            for v, is_text in zip(_values(kind, row), text, strict=True):
                fields.append(v.translate(escapes) if is_text and v is not None else value(v))
            fields += ["t" if name in row else "f" for name in kept]
            yield "\t".join(fields) + "\n"

    cursor.copy_expert(
        f"COPY ingest_stage (pos, {', '.join(names + presence)}) FROM STDIN", _CopyStream(lines(), progress)
    )
    if len(rows) > MAX_BATCH_ROWS:  # an API batch is small enough for any plan; ANALYZE cost 5% of one
        cursor.execute("ANALYZE ingest_stage")


def _pg_unknown_customers(cursor) -> None:
    cursor.execute(
        """
        SELECT s.pos, s.customer_external_id, count(*) OVER ()
        FROM ingest_stage s
        WHERE NOT EXISTS (SELECT 1 FROM loyalty_customer c WHERE c.external_id = s.customer_external_id)
        ORDER BY s.pos
        LIMIT %s
        """,
        [MAX_REPORTED_ERRORS],
    )
    found = cursor.fetchall()
    if found:
        errors = [RowError(pos, "customer_external_id", f"Unknown customer {ext!r}.") for pos, ext, _ in found]
        raise RowsRejected(errors, total=found[0][2])


# PostgreSQL, CSV files of interactions or revenue: the file goes to the database as it is (COPY of the raw
# text), is checked there set-based and upserted. The checks accept a strict subset of what the row validator
# accepts (ASCII ids and kinds, ISO 8601 timestamps with seconds and Z or an offset, plain decimals); a file
# with anything else (a bad row, an unusual but valid spelling, an unknown customer, a repeated external id)
# takes the validator's way, which reports every bad line or imports the file if it is valid after all.


def _ascii(max_length: int) -> str:
    """1 to max_length ASCII characters, printable ones at both ends (the validator's strip changes nothing)."""
    return (
        f"char_length(V) <= {max_length} AND octet_length(V) = char_length(V) "
        "AND ascii(V) BETWEEN 33 AND 126 AND ascii(right(V, 1)) BETWEEN 33 AND 126"
    )


def _plain(max_length: int) -> str:
    """_ascii for a plain file (see _NOT_PLAIN): every value is printable ASCII without spaces already."""
    return f"octet_length(V) <= {max_length}"


# Sets of valid spellings (hashed by the planner, so each check is one lookup).
_CALENDAR = (
    "(SELECT to_char(d, 'YYYY-MM-DD') FROM generate_series(DATE '1900-01-01', DATE '2100-12-31', "
    "INTERVAL '1 day') AS d)"
)
# UTC offsets up to 15:59: PostgreSQL refuses larger ones ("time zone displacement out of range"), the validator
# accepts them up to 23:59 (such a file takes the validator's way).
_OFFSETS = (
    "(SELECT sign || to_char(t, 'HH24:MI') FROM generate_series(TIMESTAMP '2000-01-01', "
    "TIMESTAMP '2000-01-01 15:59', INTERVAL '1 minute') AS t, (VALUES ('+'), ('-')) AS signs(sign))"
)
_AMOUNTS = ", ".join(  # 1-12 digits, optionally a point and 1-2 decimals, after each digit became a 9
    f"'{'9' * whole}{point}'" for whole in range(1, 13) for point in ("", ".9", ".99")
)
_FRACTION_AND_OFFSET = r"^\.\d{1,6}(Z|[+-](0\d|1[0-5]):[0-5]\d)$"
_DIGITS_AS_9 = "translate(V, '0123456789', '9999999999')"
# YYYY-MM-DDTHH:MM:SS[.ffffff] and Z or +HH:MM, years 1900 to 2100. The first 19 characters are a valid date and
# time exactly when PostgreSQL writes back what it read (no hour 24, no second 60, no 31 April, digits only;
# cheaper than looking the day and the time up in sets of valid spellings); a cast that fails (2025-13-01T...)
# raises a DataError, and the file takes the validator's way. The datestyle is set to ISO for the transaction.
_TIMESTAMP = (
    "(V LIKE '19%' OR V LIKE '20%' OR V LIKE '2100%') AND substr(V, 11, 1) = 'T' "
    "AND CAST(CAST(left(V, 19) AS timestamp) AS text) = replace(left(V, 19), 'T', ' ') "
    f"AND (V LIKE '___________________Z' OR substr(V, 20) IN {_OFFSETS} OR substr(V, 20) ~ '{_FRACTION_AND_OFFSET}')"
)
# Per kind and column: (check of the raw text V, the cheaper check of a plain file (None: the same check), SQL of
# the value from V, SQL default when absent (None: required)). V stands for the column: a word of its own, it
# occurs nowhere else in these strings.
_CSV_COLUMNS: dict[str, dict[str, tuple[str, str | None, str, str | None]]] = {
    "interactions": {
        "external_id": (_ascii(64), _plain(64), "V", None),
        "customer_external_id": (_ascii(64), _plain(64), "V", None),
        "channel": ("V IN (" + ", ".join(f"'{c}'" for c in Channel.values) + ")", None, "V", None),
        "occurred_at": (_TIMESTAMP, None, "CAST(V AS timestamptz)", None),
        "kind": (_ascii(64), _plain(64), "V", "''"),
    },
    "revenue": {
        "external_id": (_ascii(64), _plain(64), "V", None),
        "customer_external_id": (_ascii(64), _plain(64), "V", None),
        "period": (f"V IN {_CALENDAR}", None, "CAST(V AS date)", None),
        "amount": (f"{_DIGITS_AS_9} IN ({_AMOUNTS})", None, "CAST(V AS numeric(14, 2))", None),
        "currency": (f"translate(V, '{ascii_uppercase}', '{'A' * 26}') = 'AAA'", None, "V", "'EUR'"),
        "kind": (_ascii(32), _plain(32), "V", "''"),
    },
}
# A plain file: printable ASCII and line feeds only, no space, no quote, no carriage return. Its values need no
# unquoting, carry nothing the validator would strip, and an empty one is NULL already (COPY's CSV NULL).
_NOT_PLAIN = bytes(range(0, 10)) + bytes(range(11, 33)) + b'"' + bytes(range(127, 256))
# A line `\.` ends COPY's data: the lines after it would be left out. Such a file takes the validator's way.
_END_OF_DATA = re.compile(rb"(?m)^\\\.\r?$")
CSV_FAST_KINDS = tuple(_CSV_COLUMNS)


class _Fallback(Exception):
    pass


def ingest_csv_pg(
    *, kind: str, header: Sequence[str], body: bytes, dry_run: bool = False, progress=None
) -> IngestResult | None:
    """Import a CSV file of `kind` (interactions or revenue) on PostgreSQL, all or nothing: `header` holds the
    column names of the first line, `body` the rest of the file (UTF-8). Answers None, having written nothing,
    when the file needs the row validator (see above). `progress(stage, done, total)` as for file_import."""
    import psycopg2

    columns = _CSV_COLUMNS[kind]
    raw = {name: f"c{i}" for i, name in enumerate(header)}
    if (
        len(raw) != len(header)  # a repeated column name
        or len(raw) > 100
        or any(name not in raw for name, (_, _, _, default) in columns.items() if default is None)
        or (b"\\." in body and _END_OF_DATA.search(body))
    ):
        return None
    # One scan of the bytes (about 0.1 s for 60 MB) tells whether the cheaper checks of a plain file apply.
    plain = body.isascii() and len(body.translate(None, _NOT_PLAIN)) == len(body)
    dated = DAY_FIELD[kind]
    checks, values = [], []
    for name, (check, plain_check, value, default) in columns.items():
        if name not in raw:
            values.append(default)
            continue
        v = raw[name] if plain else f"NULLIF({raw[name]}, '')"
        check, value = re.sub(r"\bV\b", v, (plain and plain_check) or check), re.sub(r"\bV\b", v, value)
        checks.append(check if default is None else f"({v} IS NULL OR {check})")
        if name == dated:
            # Cast once, in the scan below, where every check passed (CASE evaluates its condition first).
            dated_value = value
            value = "ingest_dated"
        values.append(value if default is None else f"COALESCE({value}, {default})")
    result = IngestResult(kind=kind, dry_run=dry_run)
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL work_mem = '128MB'")
            cursor.execute("SET LOCAL datestyle = 'ISO, MDY'")  # _TIMESTAMP reads the text of a timestamp
            cursor.execute(
                f"CREATE TEMP TABLE ingest_raw ({', '.join(f'{c} text' for c in raw.values())}) ON COMMIT DROP"
            )
            # A wrong number of values, a NUL, ...: the validator reports the line.
            try:
                cursor.copy_expert("COPY ingest_raw FROM STDIN WITH (FORMAT csv)", io.BytesIO(body))
            except (DatabaseError, psycopg2.Error):
                raise _Fallback() from None
            result.rows = total = cursor.rowcount
            # No ANALYZE: ingest_raw is only ever scanned whole.
            if progress:
                progress("parsed", total, total)
            # The raw lines with the value of the dated column, NULL where a check fails (OFFSET 0: a subquery
            # of its own, so the cast happens once). A date or time past the future limit goes the validator's
            # way, which names its lines.
            limit = future_limit()
            limit = cursor.mogrify("%s", [limit if kind == "interactions" else limit.date()]).decode()
            checked = (
                f"(SELECT *, CASE WHEN {' AND '.join(checks)} THEN {dated_value} END AS ingest_dated "
                "FROM ingest_raw OFFSET 0) r"
            )
            good = f"ingest_dated <= {limit}"
            # The usual file: every line well-formed and new, every customer known. One INSERT straight from the
            # raw lines, checked in the same scan (a line failing a check, or naming an unknown customer, is
            # not inserted: fewer rows than lines, and the INSERT is rolled back); a repeated or stored external
            # id breaks the unique constraint. Otherwise the checks run again on their own and the rows are
            # staged for the general path below. A cast that fails in a check raises a DataError: the
            # validator's way. In the order of the (customer, time) index: its pages are then filled one after
            # the other instead of at random (the sort costs less than it saves: 8.7-9.1 s against 10.3-10.5 s
            # for this INSERT of 1,000,000 rows, in turns at load 1.2-1.5).
            stored = COMPARED[kind]
            extra_cols, extra_values = (["created_at"], ["now()"]) if kind == "revenue" else ([], [])
            by_name = dict(zip(columns, values, strict=True))
            selected = [by_name["external_id"], "c.id", *(by_name[c] for c in stored[1:]), *extra_values]
            try:
                if not dry_run and _pg_insert_all_new(
                    cursor,
                    kind,
                    MODELS[kind]._meta.db_table,
                    total=total,
                    columns=["external_id", *stored, *extra_cols],
                    select=f"SELECT {', '.join(selected)} FROM {checked} "
                    f"JOIN {Customer._meta.db_table} c ON c.external_id = {by_name['customer_external_id']} "
                    f"WHERE {good} ORDER BY c.id, ingest_dated",
                ):
                    result.created = total
                    cursor.execute("DROP TABLE ingest_raw")
                    if progress:
                        progress("validated", total, total)
                        progress("written", total, total)
                    result.unchanged = 0
                    return result
                cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {checked} WHERE ({good}) IS NOT TRUE)")
            except DataError:
                raise _Fallback() from None
            if cursor.fetchone()[0]:
                raise _Fallback()
            _pg_stage_table(cursor, kind)
            names = [name for name, _ in COLUMNS[kind]]
            cursor.execute(
                f"INSERT INTO ingest_stage (pos, {', '.join(names)}) "
                f"SELECT row_number() OVER (), {', '.join(values)} FROM {checked}"
            )
            cursor.execute("DROP TABLE ingest_raw")
            cursor.execute("ANALYZE ingest_stage")
            if progress:
                progress("validated", total, total)

            def stage_check() -> None:
                cursor.execute(
                    "SELECT EXISTS (SELECT 1 FROM ingest_stage GROUP BY external_id HAVING COUNT(*) > 1) "
                    "OR EXISTS (SELECT 1 FROM ingest_stage s WHERE NOT EXISTS "
                    f"(SELECT 1 FROM {Customer._meta.db_table} c WHERE c.external_id = s.customer_external_id))"
                )
                if cursor.fetchone()[0]:
                    raise _Fallback()

            _pg_upsert(cursor, kind, result, total=total, stage_check=stage_check, try_all_new=dry_run)
            if dry_run:
                raise _DryRun()
    except _Fallback:
        return None
    except _DryRun:
        pass
    if progress:
        progress("written", total, total)
    result.unchanged = result.rows - result.created - result.updated
    return result


def _pg_write(
    kind: str, rows: Sequence[dict], positions: Sequence[int], result: IngestResult, progress: Progress | None
) -> _Touched:
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL work_mem = '128MB'")
        if kind != "customers" and _pg_copy_all_new(cursor, kind, rows):
            result.created = len(rows)
            if progress is not None:
                progress(len(rows))
            return _Touched()
        _pg_stage(cursor, kind, rows, positions, progress)
        check = None if kind == "customers" else (lambda: _pg_unknown_customers(cursor))
        # The COPY above tried "every row new" already: straight to the general path.
        _pg_upsert(cursor, kind, result, total=len(rows), stage_check=check, try_all_new=False)
    return _Touched()


def _text_array(values: Iterable[str]) -> str:
    """PostgreSQL's text form of a text[] (`{"a","b"}`), sent as one string parameter: psycopg2 would send a
    list as an ARRAY[...] expression of one literal per element, which costs twice as much to build and to
    parse at ten thousand elements (12 ms against 25 ms for a batch's customers)."""
    return "{" + ",".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values) + "}"


def _copy_text(value: str) -> str:
    return value.translate(_COPY_ESCAPES)


def _pg_copy_all_new(cursor, kind: str, rows: Sequence[dict]) -> bool:
    """Typed rows of interactions or revenue, the common case of a feed (every row new, every customer known):
    the customers are resolved with one query and the rows COPYed straight into their table, tagged with a new
    RollupBatch (as `_pg_insert_all_new`, whose savepoint and outcomes this shares: a stored external id breaks
    the unique constraint and everything is rolled back). Answers False, having written nothing, when a customer
    is unknown or a row is not new: the caller then stages the rows for the general path."""
    import psycopg2.errors

    refs = list({row["customer_external_id"] for row in rows})
    cursor.execute(
        f"SELECT external_id, id FROM {Customer._meta.db_table} WHERE external_id = ANY(%s::text[])",
        [_text_array(refs)],
    )
    ids = dict(cursor.fetchall())
    if len(ids) != len(refs):
        return False
    # Ids and kinds are escaped for COPY only if one of them needs it (one scan of them all, in C).
    texts = "".join(r["external_id"] + r.get("kind", "") + r.get("currency", "") for r in rows)
    text = _copy_text if any(c in texts for c in "\\\t\n\r") else str
    # The batch's id and the lower bound of its rows' ids, before the COPY (a fallback wastes one batch id).
    batch_id, first_id = rollups.rollup_batch_next_id(cursor, kind=kind)
    tag = int(batch_id)
    if kind == "interactions":
        columns = "external_id, customer_id, channel, occurred_at, kind"
        lines = (
            f"{text(r['external_id'])}\t{ids[r['customer_external_id']]}\t{r['channel']}\t"
            f"{r['occurred_at'].isoformat()}\t{text(r.get('kind') or '')}\t{tag}\n"
            for r in rows
        )
    else:
        columns = "external_id, customer_id, period, amount, currency, kind, created_at"
        created = datetime.now(UTC).isoformat()
        lines = (
            f"{text(r['external_id'])}\t{ids[r['customer_external_id']]}\t{r['period'].isoformat()}\t"
            f"{r['amount']}\t{text(r.get('currency') or 'EUR')}\t{text(r.get('kind') or '')}\t{created}\t{tag}\n"
            for r in rows
        )
    table = MODELS[kind]._meta.db_table
    try:
        with transaction.atomic():
            # The lines are made a chunk at a time while the server inserts the chunks already sent.
            cursor.copy_expert(
                f"COPY {table} ({columns}, ingest_batch_id) FROM STDIN",
                _CopyStream(lines, None, every=COPY_CHUNK_ROWS),
                size=COPY_READ_SIZE,
            )
            rollups.rollup_batch_record(cursor, batch_id=batch_id, kind=kind, first_id=first_id, rows=len(rows))
    except (IntegrityError, OperationalError, psycopg2.Error) as exc:  # COPY raises psycopg2's own errors
        if not _not_all_new(exc):
            raise
        return False
    return True


def _not_all_new(exc: BaseException) -> bool:
    """A stored or repeated external id, or a deadlock with a batch writing the same new ids in another order:
    the general path (which orders its writes) takes the batch."""
    import psycopg2.errors

    expected = (psycopg2.errors.UniqueViolation, psycopg2.errors.DeadlockDetected)
    return isinstance(exc, expected) or isinstance(exc.__cause__, expected)


def _pg_upsert(
    cursor,
    kind: str,
    result: IngestResult,
    *,
    total: int,
    stage_check: Callable[[], None] | None = None,
    try_all_new: bool = True,
) -> None:
    """Upsert the checked rows of the temporary table ingest_stage (dropped afterwards) into the table of
    `kind`; counts go to `result`. Interactions and revenue: when every row is new (the usual feed) they go in
    with one plain INSERT; otherwise `stage_check` runs (references to customers, repeated ids: it raises
    on a bad row) and the general path follows. The rollups of interactions and revenue follow by deltas: the
    cells of new rows and the new values of changed rows are added, the old values of changed rows subtracted."""
    table = MODELS[kind]._meta.db_table
    stored = COMPARED[kind]
    if kind == "customers":
        cursor.execute(
            """
            SELECT c.id FROM ingest_stage s JOIN loyalty_customer c ON c.external_id = s.external_id
            WHERE c.status = 'active' AND s.status = 'churned'
            """
        )
        result.churned_customer_ids = [r[0] for r in cursor.fetchall()]
        new_values = [f"s.{c}" for c in stored]
        # An existing customer keeps the stored value of an optional field its row omitted.
        update_values = [
            f"CASE WHEN s.has_{_kept_by(c)} THEN s.{c} ELSE t.{c} END" if _kept_by(c) else f"s.{c}" for c in stored
        ]
        source = "ingest_stage s"
        extra_cols, extra_values = ["created_at", "updated_at"], ["now()", "now()"]
        set_extra = ", updated_at = now()"
        order = "s.pos"
    else:
        new_values = ["c.id", *(f"s.{c}" for c in stored[1:])]
        update_values = new_values
        source = "ingest_stage s JOIN loyalty_customer c ON c.external_id = s.customer_external_id"
        extra_cols, extra_values = (["created_at"], ["now()"]) if kind == "revenue" else ([], [])
        set_extra = ""
        order = f"c.id, s.{DAY_FIELD[kind]}"

    if (
        kind != "customers"
        and try_all_new
        and _pg_insert_all_new(
            cursor,
            kind,
            table,
            total=total,
            columns=["external_id", *stored, *extra_cols],
            select=f"SELECT s.external_id, {', '.join(new_values + extra_values)} FROM {source}",
        )
    ):
        result.created = total
        cursor.execute("DROP TABLE ingest_stage")
        return
    if stage_check is not None:
        stage_check()
    if kind != "customers":
        for delta in ("ingest_added", "ingest_removed"):
            cursor.execute(f"CREATE TEMP TABLE {delta} ({ROLLUP_CELL_COLUMNS[kind]}) ON COMMIT DROP")

    def run(statement: str, cells_into: str) -> int:
        """Execute an INSERT or UPDATE of `table`; its rows' rollup cells go to `cells_into`."""
        if kind != "customers":
            statement = (
                f"WITH changed AS ({statement} RETURNING {ROLLUP_CELL[kind]}) "
                f"INSERT INTO {cells_into} SELECT * FROM changed"
            )
        cursor.execute(statement)
        return cursor.rowcount

    # 1. New rows: one INSERT (in index order of the customer), existing external ids are left alone.
    result.created = run(
        f"INSERT INTO {table} AS t (external_id, {', '.join(stored + extra_cols)}) "
        f"SELECT s.external_id, {', '.join(new_values + extra_values)} FROM {source} ORDER BY {order} "
        "ON CONFLICT (external_id) DO NOTHING",
        "ingest_added",
    )
    if result.created < total:
        # 2. Existing rows whose values differ: one UPDATE ... FROM (rows just inserted compare equal). Their
        # old rollup cells are read first, under row locks, so a concurrent correction cannot slip in between.
        differs = f"({', '.join('t.' + c for c in stored)}) IS DISTINCT FROM ({', '.join(update_values)})"
        assignments = ", ".join(f"{c} = {v}" for c, v in zip(stored, update_values, strict=True))
        if kind == "customers":
            from_clause, join_condition = "ingest_stage s", ""
        else:
            from_clause = "ingest_stage s, loyalty_customer c"
            join_condition = "c.external_id = s.customer_external_id AND "
            cursor.execute(
                f"INSERT INTO ingest_removed SELECT {ROLLUP_CELL[kind]} "
                f"FROM {source} JOIN {table} t ON t.external_id = s.external_id WHERE {differs} "
                "ORDER BY t.id FOR UPDATE OF t"
            )
            # A changed row whose own batch's cells are still pending (applied after that batch's commit): that
            # batch is applied first, here, so its cells are in the rollups before this change subtracts them.
            cursor.execute(
                f"SELECT DISTINCT t.ingest_batch_id FROM {source} JOIN {table} t ON t.external_id = s.external_id "
                f"WHERE {differs} AND t.ingest_batch_id IS NOT NULL"
            )
            rollups.rollups_apply_batches(cursor, batch_ids=sorted(r[0] for r in cursor.fetchall()))
        result.updated = run(
            f"UPDATE {table} AS t SET {assignments}{set_extra} FROM {from_clause} "
            f"WHERE {join_condition}t.external_id = s.external_id AND {differs}",
            "ingest_added",
        )
    if kind != "customers":
        rollups.rollups_apply_deltas(cursor, kind=kind, added="ingest_added", removed="ingest_removed")
        cursor.execute("DROP TABLE ingest_added, ingest_removed")
    cursor.execute("DROP TABLE ingest_stage")


class _NotAllNew(Exception):
    pass


def _pg_insert_all_new(cursor, kind: str, table: str, *, total: int, columns: list[str], select: str) -> bool:
    """The common case of a feed: every row is new. One plain INSERT of them all (`select`: a SELECT of
    `columns` in that order, FROM ... WHERE ...), under a savepoint: no `ON CONFLICT` (its speculative insertion
    made the INSERT half as slow again at 1,000,000 rows) and no RETURNING. The rows are tagged with a new
    RollupBatch, recorded in the same transaction, whose rollup cells a task applies after commit (outbox). A row
    whose external_id is stored already (or comes twice, or is being written by a concurrent batch) breaks the
    unique constraint: the savepoint rolls the INSERT back and the caller takes the general path, which tells
    new, changed and unchanged rows apart. A row that `select` does not give (an unknown customer, a failed
    check) makes fewer rows than `total`: the savepoint is rolled back too. Answers whether every row was
    inserted."""

    try:
        with transaction.atomic():
            batch_id, first_id = rollups.rollup_batch_next_id(cursor, kind=kind)
            cursor.execute(
                f"INSERT INTO {table} ({', '.join(columns)}, ingest_batch_id) "
                f"SELECT x.*, {int(batch_id)} FROM ({select}) x"
            )
            if cursor.rowcount != total:
                raise _NotAllNew()
            rollups.rollup_batch_record(cursor, batch_id=batch_id, kind=kind, first_id=first_id, rows=total)
    except _NotAllNew:
        return False
    except (IntegrityError, OperationalError) as exc:
        if not _not_all_new(exc):
            raise
        return False
    return True


# --------------------------------------------------------------------------------------------------------------
# Other databases (SQLite): compare in Python, one multi-row upsert per chunk.


def _customer_ids(refs: Iterable[str]) -> dict[str, int]:
    ids: dict[str, int] = {}
    for _, chunk in _chunks(sorted(set(refs)), CHUNK):
        ids.update(Customer.objects.filter(external_id__in=chunk).values_list("external_id", "id"))
    return ids


def customer_refs_check(rows: Sequence[dict], positions: Sequence[int]) -> list[RowError]:
    """Errors for rows whose customer_external_id names no customer."""
    ids = _customer_ids(row["customer_external_id"] for row in rows)
    return [
        RowError(position, "customer_external_id", f"Unknown customer {row['customer_external_id']!r}.")
        for row, position in zip(rows, positions, strict=True)
        if row["customer_external_id"] not in ids
    ]


def _resolve_customers(rows: Sequence[dict], positions: Sequence[int]) -> dict[str, int]:
    errors = customer_refs_check(rows, positions)
    if errors:
        raise RowsRejected(errors[:MAX_REPORTED_ERRORS], total=len(errors))
    return _customer_ids(row["customer_external_id"] for row in rows)


def _generic_write(
    kind: str, rows: Sequence[dict], positions: Sequence[int], result: IngestResult, progress: Progress | None
) -> _Touched:
    touched = _Touched()
    model = MODELS[kind]
    stored = COMPARED[kind]
    customer_ids = _resolve_customers(rows, positions) if kind != "customers" else {}
    names = [name for name, _ in COLUMNS[kind]]
    for _, chunk in _chunks(rows, CHUNK):
        existing = {
            values[0]: values[1:]
            for values in model.objects.filter(external_id__in=[r["external_id"] for r in chunk]).values_list(
                "external_id", *stored, *(["id"] if kind == "customers" else [])
            )
        }
        objects = []
        for row in chunk:
            values = dict(zip(names, _values(kind, row), strict=True))
            if kind != "customers":
                values["customer_id"] = customer_ids[values.pop("customer_external_id")]
            old = existing.get(values["external_id"])
            if kind == "customers" and old is not None:
                for column in stored:  # an existing customer keeps what its row omitted
                    kept_by = _kept_by(column)
                    if kept_by and kept_by not in row:
                        values[column] = old[stored.index(column)]
            new = tuple(values[name] for name in stored)
            if old is not None and tuple(old[: len(stored)]) == new:
                continue
            if old is None:
                result.created += 1
            else:
                result.updated += 1
            objects.append(model(**values))
            if kind == "customers":
                if old is not None and old[stored.index("status")] == "active" and values["status"] == "churned":
                    result.churned_customer_ids.append(old[-1])
            else:
                day = DAY_FIELD[kind]
                touched.add(values["customer_id"], values[day])
                if old is not None:
                    touched.add(old[stored.index("customer_id")], old[stored.index(day)])
        if objects:
            update_fields = [*stored] + (["updated_at"] if kind == "customers" else [])
            model.objects.bulk_create(
                objects, update_conflicts=True, unique_fields=["external_id"], update_fields=update_fields
            )
        if progress is not None:
            progress(len(chunk))
    return touched
