"""Small SQL builders shared by enrolment and re-evaluation (tiers are few: CASE expressions, no joins)."""

from __future__ import annotations

from django.db import connection


def table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def qualifying_tier_case(metric_sql: str, tiers, *, output: str) -> tuple[str, list]:
    """CASE giving the best tier whose threshold `metric_sql` reaches (the lowest tier when none, or when
    the metric is missing). `output` is "id" or "rank"."""
    ordered = sorted(tiers, key=lambda t: t.rank, reverse=True)
    if len(ordered) == 1:
        return "CAST(%s AS BIGINT)", [getattr(ordered[0], output)]
    parts, params = [], []
    for tier in ordered[:-1]:
        parts.append(f"WHEN {metric_sql} >= %s THEN %s")
        params += [tier.threshold, getattr(tier, output)]
    params.append(getattr(ordered[-1], output))
    return f"CAST(CASE {' '.join(parts)} ELSE %s END AS BIGINT)", params


def tier_map_case(column_sql: str, mapping: dict[int, int | None]) -> tuple[str, list]:
    """CASE mapping a tier id column to a value (rank, lower tier id...)."""
    if not mapping:
        return "CAST(NULL AS BIGINT)", []
    parts, params = [], []
    for key, value in mapping.items():
        parts.append("WHEN %s THEN %s")
        params += [key, value]
    return f"CAST(CASE {column_sql} {' '.join(parts)} ELSE NULL END AS BIGINT)", params
