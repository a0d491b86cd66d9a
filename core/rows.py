"""Hot read queries written once, as SQL, and their rows mapped back to model instances or plain dicts.

The ORM compiles a queryset anew on every execution (the member context with its four joins cost 1.8 ms of Python
per request before reaching the database, issue 16). For the few queries every member request runs, the SQL text
is built once per process and database vendor from the models' own metadata (columns, table names), so it
follows the models, and each execution only binds its parameters. Rows are turned back into instances with
`Model.from_db` (what the ORM's iterator does), after the database's converters for each field (datetimes and
decimals on SQLite, JSON everywhere), so an instance loaded here equals one loaded by the ORM.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from typing import Any

from django.conf import settings
from django.db import connections
from django.db.models import Model


class Columns:
    """The concrete columns of `model` under a table alias in a hand-written SELECT, and the mapping of a slice of
    a row back to an instance (`load`) or to a dict of chosen attributes (`values`)."""

    def __init__(self, model: type[Model], alias: str, *, only: Sequence[str] | None = None):
        self.model = model
        self.alias = alias
        fields = model._meta.concrete_fields
        if only is not None:
            by_attname = {f.attname: f for f in fields}
            fields = [by_attname[name] for name in only]
        self.fields = list(fields)
        self.attnames = [f.attname for f in self.fields]
        self.width = len(self.fields)
        self._converters: dict[str, list[tuple[int, list[Callable]]]] = {}
        self._pk_index = next((i for i, f in enumerate(self.fields) if f.primary_key), None)

    def sql(self, using: str = "default") -> str:
        quote = connections[using].ops.quote_name
        return ", ".join(f"{self.alias}.{quote(f.column)}" for f in self.fields)

    def converters(self, using: str = "default") -> list[tuple[int, list[Callable]]]:
        """(index, converters) of the fields whose database values need converting, as the ORM applies them."""
        cached = self._converters.get(using)
        if cached is None:
            connection = connections[using]
            cached = []
            for index, field in enumerate(self.fields):
                col = field.get_col(self.alias)
                found = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
                if found:
                    cached.append((index, [(fn, col) for fn in found]))
            self._converters[using] = cached
        return cached

    def _converted(self, row: Sequence[Any], start: int, using: str) -> list[Any]:
        values = list(row[start : start + self.width])
        converting = self.converters(using)
        if converting:  # none on PostgreSQL for most models: no connection lookup per row then
            connection = connections[using]
            for index, converters in converting:
                value = values[index]
                for fn, col in converters:
                    value = fn(value, col, connection)
                values[index] = value
        return values

    def load(self, row: Sequence[Any], start: int = 0, *, using: str = "default") -> Model | None:
        """The instance in row[start:start + width], or None when the slice is a LEFT JOIN's empty side."""
        if self._pk_index is not None and row[start + self._pk_index] is None:
            return None
        return self.model.from_db(using, self.attnames, self._converted(row, start, using))

    def values(self, row: Sequence[Any], start: int = 0, *, using: str = "default") -> dict[str, Any]:
        return dict(zip(self.attnames, self._converted(row, start, using), strict=True))


def _prepared_names(using: str) -> set[str]:
    """The statements prepared on the current database session of `using` (empty again after a reconnect)."""
    wrapper = connections[using]
    raw = wrapper.connection
    state = getattr(wrapper, "_premier_prepared", None)
    if state is None or state[0] is not raw:
        state = wrapper._premier_prepared = (raw, set())
    return state[1]


class Statement:
    """SQL text built once per database vendor by `build(using)` (which may use `Columns.sql` and
    `connection.ops.quote_name`), then executed with fresh parameters (`%s` placeholders).

    On PostgreSQL the statement is also prepared once per database session (`PREPARE`, then `EXECUTE` with the
    parameters): the server plans it once instead of on every execution (the member context's five-table join
    cost 1.1 ms of planning per request against 0.15 ms to run). psycopg2 binds parameters on the client, so
    this is done here, explicitly. The PREPARE runs on the raw connection, once per session, like the session
    set-up Django does on connect; query logs and counts see the EXECUTE. Behind a pooler in transaction mode
    (PgBouncer before 1.21) prepared statements do not survive: set DATABASE_PREPARE=0 there."""

    _names: set[str] = set()
    _lock = threading.Lock()

    def __init__(self, build: Callable[[str], str], *, name: str):
        """`name` (unique, an SQL identifier) names the prepared statement: logs show `EXECUTE premier_<name>`."""
        if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            raise ValueError(f"Statement name {name!r} is not a lowercase SQL identifier.")
        with Statement._lock:
            if name in Statement._names:
                raise ValueError(f"Two statements are named {name!r}.")
            Statement._names.add(name)
        self._build = build
        self._sql: dict[str, str] = {}
        self.name = f"premier_{name}"

    def sql(self, using: str = "default") -> str:
        text = self._sql.get(using)
        if text is None:
            text = self._sql[using] = self._build(using)
        return text

    def _execute(self, cursor, params: Sequence[Any], using: str) -> None:
        wrapper = connections[using]
        if wrapper.vendor != "postgresql" or not getattr(settings, "DATABASE_PREPARE", True):
            cursor.execute(self.sql(using), params)
            return
        text = self.sql(using)
        prepared = _prepared_names(using)
        if self.name not in prepared:
            numbered = iter(range(1, text.count("%s") + 1))
            with wrapper.connection.cursor() as raw:
                raw.execute(f"PREPARE {self.name} AS " + re.sub("%s", lambda _: f"${next(numbered)}", text))
            prepared.add(self.name)
        if params:
            cursor.execute(f"EXECUTE {self.name}({', '.join(['%s'] * len(params))})", params)
        else:
            cursor.execute(f"EXECUTE {self.name}")

    def fetchall(self, params: Sequence[Any], *, using: str = "default") -> list[tuple]:
        with connections[using].cursor() as cursor:
            self._execute(cursor, params, using)
            return cursor.fetchall()

    def fetchone(self, params: Sequence[Any], *, using: str = "default") -> tuple | None:
        with connections[using].cursor() as cursor:
            self._execute(cursor, params, using)
            return cursor.fetchone()

    def execute(self, params: Sequence[Any], *, using: str = "default") -> int:
        """Run a statement that returns no rows; the number of rows it changed."""
        with connections[using].cursor() as cursor:
            self._execute(cursor, params, using)
            return cursor.rowcount


class PagedRows:
    """A list read the paginator (core.pagination.Page) can page like a queryset: slicing fetches that page
    (`fetch(limit, offset)`), `all().count()` counts the rows (`count()`), each with one query."""

    def __init__(self, fetch: Callable[[int, int], list], count: Callable[[], int]):
        self._fetch = fetch
        self._count = count

    def __getitem__(self, page: slice) -> list:
        if not isinstance(page, slice) or page.step is not None:
            raise TypeError("PagedRows take a slice [offset:offset + limit].")
        offset = page.start or 0
        if page.stop is None or page.stop <= offset:
            raise TypeError("PagedRows need a bounded, non-empty slice.")
        return self._fetch(page.stop - offset, offset)

    def all(self) -> PagedRows:
        return self

    def count(self) -> int:
        return self._count()

    def __iter__(self):
        raise TypeError("PagedRows are read a page at a time (slice them).")
