"""Segment rules: validation (clear 422 errors) and compilation to SQL.

A rule is a JSON tree:
    {"all": [node, ...]} | {"any": [node, ...]} | {"not": node}
    | {"field": <name>, "op": "eq|ne|lt|lte|gt|gte|in|not_in", "value": ...}
`{}` (or null) matches every scored customer. Fields are the CustomerMetrics of the scoring run and customer
attributes: region, status, age, age_band, tenure_days (age and tenure as of the scoring run's day), and the
community `influence` (converted referrals discounted per generation plus weighted votes received; 0 if none).
The SQL runs over `m` (CustomerMetrics) joined with `c` (Customer); every value is a query parameter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection

from core.errors import ValidationFailed

NUMBER, INTEGER, TEXT = "number", "integer", "text"

METRIC_FIELDS: dict[str, tuple[str, str]] = {
    # name: (type, column)
    "revenue": (NUMBER, "m.revenue_minor"),  # major units (e.g. euros); compared as minor units
    "revenue_minor": (INTEGER, "m.revenue_minor"),
    "revenue_rank": (INTEGER, "m.revenue_rank"),
    "revenue_percentile": (NUMBER, "m.revenue_percentile"),
    "engagement_score": (NUMBER, "m.engagement_score"),
    "engagement_percentile": (NUMBER, "m.engagement_percentile"),
    "channels_used": (INTEGER, "m.channels_used"),
    "active_weeks": (INTEGER, "m.active_weeks"),
    "days_since_last": (INTEGER, "m.days_since_last"),
    "decayed_activity": (NUMBER, "m.decayed_activity"),
    # Community influence (loyalty.CustomerInfluence, written by the community app); 0 without a row.
    "influence": (
        NUMBER,
        "COALESCE((SELECT ci.score FROM loyalty_customerinfluence ci WHERE ci.customer_id = m.customer_id), 0)",
    ),
}
AGE_BANDS: dict[str, tuple[int, int]] = {
    "under 18": (0, 17),
    "18-24": (18, 24),
    "25-34": (25, 34),
    "35-44": (35, 44),
    "45-54": (45, 54),
    "55-64": (55, 64),
    "65+": (65, 200),
}
ATTRIBUTE_FIELDS: dict[str, str] = {
    "region": TEXT,
    "status": TEXT,
    "age": INTEGER,
    "age_band": TEXT,
    "tenure_days": INTEGER,
}
FIELDS = {**{k: v[0] for k, v in METRIC_FIELDS.items()}, **ATTRIBUTE_FIELDS}
# Metrics that top N may rank by (highest first); revenue_rank and days_since_last rank lowest first.
RANKABLE = [k for k in METRIC_FIELDS if k != "revenue"]
ASCENDING = {"revenue_rank", "days_since_last"}
COMPARISONS = {"eq": "=", "ne": "<>", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}
LIST_OPS = {"in", "not_in"}
OPS_BY_TYPE = {
    NUMBER: set(COMPARISONS) | LIST_OPS,
    INTEGER: set(COMPARISONS) | LIST_OPS,
    TEXT: {"eq", "ne", "in", "not_in"},
}
MAX_DEPTH, MAX_NODES, MAX_LIST = 10, 200, 1000


class _Errors:
    def __init__(self):
        self.fields: dict[str, list[str]] = {}
        self.nodes = 0

    def add(self, path: str, message: str) -> None:
        self.fields.setdefault(path, []).append(message)


def _value_ok(kind: str, value: Any) -> bool:
    if kind == TEXT:
        return isinstance(value, str) and len(value) <= 200 and "\x00" not in value
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if kind == INTEGER and not (isinstance(value, int) or float(value).is_integer()):
        return False
    return abs(value) <= 10**15


def _check(node: Any, path: str, depth: int, errors: _Errors) -> None:
    errors.nodes += 1
    if errors.nodes > MAX_NODES:
        errors.add(path, f"The rule has more than {MAX_NODES} nodes.")
        return
    if depth > MAX_DEPTH:
        errors.add(path, f"The rule is nested deeper than {MAX_DEPTH} levels.")
        return
    if not isinstance(node, dict):
        errors.add(path, "Each node is an object: a group (all/any/not) or a comparison (field/op/value).")
        return
    groups = [key for key in ("all", "any", "not") if key in node]
    if groups:
        if len(node) != 1:
            errors.add(path, "A group node has exactly one key: all, any or not.")
            return
        key = groups[0]
        if key == "not":
            _check(node["not"], f"{path}.not", depth + 1, errors)
            return
        children = node[key]
        if not isinstance(children, list):
            errors.add(f"{path}.{key}", "A list of nodes.")
        elif not children:
            errors.add(f"{path}.{key}", "An empty group; give at least one node.")
        else:
            for index, child in enumerate(children):
                _check(child, f"{path}.{key}.{index}", depth + 1, errors)
        return
    unknown = set(node) - {"field", "op", "value"}
    if unknown or not {"field", "op", "value"} <= set(node):
        errors.add(path, "A comparison has exactly the keys field, op and value (or use all/any/not).")
        return
    field, op, value = node["field"], node["op"], node["value"]
    if not isinstance(field, str) or field not in FIELDS:
        errors.add(f"{path}.field", f"Unknown field {field!r}. Known: {', '.join(sorted(FIELDS))}.")
        return
    kind = FIELDS[field]
    allowed = OPS_BY_TYPE[kind] - ({"in", "not_in"} if field == "tenure_days" else set())
    if not isinstance(op, str) or op not in allowed:
        known = ", ".join(sorted(allowed))
        errors.add(f"{path}.op", f"Operator {op!r} does not apply to {field}. Use one of: {known}.")
        return
    if op in LIST_OPS:
        if not isinstance(value, list) or not value or len(value) > MAX_LIST:
            errors.add(f"{path}.value", f"A non-empty list (at most {MAX_LIST} items) for {op}.")
            return
        items = value
    else:
        items = [value]
    for item in items:
        if not _value_ok(kind, item):
            errors.add(f"{path}.value", f"{field} compares with a {kind}; got {item!r}.")
            return
        if field == "age_band" and item not in AGE_BANDS:
            errors.add(f"{path}.value", f"Unknown age band {item!r}. Known: {', '.join(AGE_BANDS)}.")
            return


def rule_validate(*, rule: Any, top_n: int | None = None, top_by: str = "", tie_break: str = "") -> None:
    """Raise ValidationFailed (422, code invalid_segment_rule) naming every problem by its path."""
    errors = _Errors()
    if rule not in (None, {}):
        _check(rule, "rule", 0, errors)
    if top_n is not None:
        if top_n < 1:
            errors.add("top_n", "At least 1.")
        if not top_by:
            errors.add("top_by", "Top N needs a metric to rank by.")
    if top_by and top_by not in RANKABLE:
        errors.add("top_by", f"Unknown metric {top_by!r}. Known: {', '.join(RANKABLE)}.")
    if top_by and top_n is None:
        errors.add("top_n", "top_by needs top_n.")
    if tie_break and tie_break not in RANKABLE:
        errors.add("tie_break", f"Unknown metric {tie_break!r}. Known: {', '.join(RANKABLE)}.")
    if errors.fields:
        raise ValidationFailed("The segment rule is not valid.", code="invalid_segment_rule", fields=errors.fields)


@dataclass
class Compiled:
    sql: str
    params: list
    fields: list[str]  # referenced fields, in order
    needs_customer: bool


class Compiler:
    """Compiles a validated rule for one scoring run day (`as_of`)."""

    def __init__(self, as_of: datetime):
        self.as_of = as_of
        self.fields: list[str] = []

    def compile(self, rule: Any) -> Compiled:
        self.fields = []
        sql, params = ("1 = 1", []) if rule in (None, {}) else self.node(rule)
        needs = any(f in ATTRIBUTE_FIELDS for f in self.fields)
        return Compiled(sql, params, list(dict.fromkeys(self.fields)), needs)

    def node(self, node: dict) -> tuple[str, list]:
        if "all" in node or "any" in node:
            joiner = " AND " if "all" in node else " OR "
            parts = [self.node(child) for child in (node.get("all") or node.get("any"))]
            return "(" + joiner.join(p[0] for p in parts) + ")", [x for p in parts for x in p[1]]
        if "not" in node:
            sql, params = self.node(node["not"])
            return f"(NOT {sql})", params
        return self.leaf(node["field"], node["op"], node["value"])

    def leaf(self, field: str, op: str, value: Any) -> tuple[str, list]:
        self.fields.append(field)
        if op in LIST_OPS:
            parts = [self.leaf(field, "eq", item) for item in value]
            sql = "(" + " OR ".join(p[0] for p in parts) + ")"
            params = [x for p in parts for x in p[1]]
            if op == "not_in":
                return f"({self._not_null(field)} AND NOT {sql})", params
            return sql, params
        if field in METRIC_FIELDS:
            column = METRIC_FIELDS[field][1]
            if field == "revenue":
                value = round(value * 100)
            return f"{column} {COMPARISONS[op]} %s", [value]
        if field in ("region", "status"):
            return f"c.{field} {COMPARISONS[op]} %s", [value]
        if field == "age":
            # age = as_of year - birth_year: age OP v  <=>  birth_year (reversed OP) year - v
            reverse = {"eq": "=", "ne": "<>", "lt": ">", "lte": ">=", "gt": "<", "gte": "<="}
            return f"c.birth_year {reverse[op]} %s", [self.as_of.year - int(value)]
        if field == "age_band":
            low, high = AGE_BANDS[value]
            sql = "(c.birth_year >= %s AND c.birth_year <= %s)"
            params = [self.as_of.year - high, self.as_of.year - low]
            if op == "ne":
                return f"(c.birth_year IS NOT NULL AND NOT {sql})", params
            return sql, params
        if field == "tenure_days":
            # tenure_days >= v  <=>  joined_at <= as_of - v days
            def at_least(days: int) -> tuple[str, list]:
                return "c.joined_at <= %s", [self._dt(self.as_of - timedelta(days=days))]

            v = int(value)
            if op == "gte":
                return at_least(v)
            if op == "gt":
                return at_least(v + 1)
            if op == "lt":
                sql, params = at_least(v)
                return f"NOT ({sql})", params
            if op == "lte":
                sql, params = at_least(v + 1)
                return f"NOT ({sql})", params
            lo_sql, lo_params = at_least(v)
            hi_sql, hi_params = at_least(v + 1)
            eq = f"({lo_sql} AND NOT ({hi_sql}))"
            return (eq if op == "eq" else f"(NOT {eq})"), lo_params + hi_params
        raise AssertionError(field)  # pragma: no cover - validated before

    @staticmethod
    def _not_null(field: str) -> str:
        if field in ("age", "age_band"):
            return "c.birth_year IS NOT NULL"
        if field in METRIC_FIELDS:
            return f"{METRIC_FIELDS[field][1]} IS NOT NULL"
        return "1 = 1"

    @staticmethod
    def _dt(value: datetime):
        return connection.ops.adapt_datetimefield_value(value)


def leaves(rule: Any, path: str = "rule") -> list[tuple[str, dict]]:
    """Every comparison of a rule with its path."""
    if rule in (None, {}):
        return []
    if "all" in rule or "any" in rule:
        key = "all" if "all" in rule else "any"
        return [x for i, child in enumerate(rule[key]) for x in leaves(child, f"{path}.{key}.{i}")]
    if "not" in rule:
        return leaves(rule["not"], f"{path}.not")
    return [(path, rule)]
