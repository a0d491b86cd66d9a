"""The impact report's per-member aggregation as it was before it read the revenue rollup into numpy arrays
(one temporary table of SQL over the raw revenue lines, seven aggregate queries of it), kept as the reference
that `test_impact_reference.py` compares the report with, figure for figure. Not used by the product."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from django.db import connection, transaction
from django.utils.dateparse import parse_datetime

from loyalty.retention.selectors import (
    DAYS_PER_MONTH,
    TAKE_UP_CHANNELS,
    Cell,
    RevenueMoments,
    _params,
    _pg,
    _tables,
    horizon_days,
)


def _days(later: str, earlier: str) -> str:
    """Days between two timestamps, as a float."""
    if _pg():
        return f"(EXTRACT(EPOCH FROM ({later} - {earlier})) / 86400.0)"
    return f"(julianday({later}) - julianday({earlier}))"


def _floor(expr: str) -> str:
    # Arguments are never negative where used, so truncation is the floor on SQLite.
    return f"CAST(FLOOR({expr}) AS integer)" if _pg() else f"CAST({expr} AS INTEGER)"


def _month(expr: str) -> str:
    return f"to_char({expr} AT TIME ZONE 'UTC', 'YYYY-MM')" if _pg() else f"strftime('%%Y-%%m', {expr})"


def _float(expr: str) -> str:
    return f"CAST({expr} AS double precision)" if _pg() else f"CAST({expr} AS REAL)"


def _pre_window(enrolled: str) -> tuple[str, str]:
    """CUPED's pre-period: revenue lines whose service period ends before the enrolment day. A line's period
    is the first day of the month it covers (a line dated within a month counts as that month), so only periods
    before the first day of the enrolment month, back to twelve months before it. The enrolment month's own
    bill covers days after enrolment and is left out."""
    if _pg():
        start = f"CAST(date_trunc('month', {enrolled} AT TIME ZONE 'UTC') AS date)"
        return start, f"CAST(date_trunc('month', {enrolled} AT TIME ZONE 'UTC') - interval '12 months' AS date)"
    return f"date({enrolled}, 'start of month')", f"date({enrolled}, 'start of month', '-12 months')"


def _pre_window(enrolled: str) -> tuple[str, str]:
    """CUPED's pre-period: revenue lines whose service period ends before the enrolment day. A line's period
    is the first day of the month it covers (a line dated within a month counts as that month), so only periods
    before the first day of the enrolment month, back to twelve months before it. The enrolment month's own
    bill covers days after enrolment and is left out."""
    if _pg():
        start = f"CAST(date_trunc('month', {enrolled} AT TIME ZONE 'UTC') AS date)"
        return start, f"CAST(date_trunc('month', {enrolled} AT TIME ZONE 'UTC') - interval '12 months' AS date)"
    return f"date({enrolled}, 'start of month')", f"date({enrolled}, 'start of month', '-12 months')"


REVENUE_MONTHS = 12  # revenue per customer month by month, for the first twelve months after enrolment


def _day_number(expr: str, *, date: bool = False) -> str:
    """Days since 1970-01-01 as a float (a timestamp) or an integer (a date, on PostgreSQL)."""
    if _pg():
        if date:
            return f"({expr} - DATE '1970-01-01')"
        return f"(CAST(EXTRACT(EPOCH FROM {expr}) AS double precision) / 86400.0)"
    return f"(julianday({expr}) - 2440587.5)"


def _members_sql(horizons: Sequence[int]) -> str:
    """One row per membership enrolled by as_of (parameters, named: p, as_of): group, enrolment tier, cohort,
    churn event, tenure `dur` and `age` in days, take-up, engagement band and the scoring run it came from, age
    band and region at enrolment, and its revenue: `x` (the CUPED pre-period), `y<i>` (the first horizons[i]
    days after enrolment) and `m<k>` (month k after enrolment).

    Subgroups are baseline only: the engagement band comes from the scoring run the enrolment used (the
    membership's source segment run), or, without one, the latest succeeded scoring run as of the enrolment;
    never from a run after it (churners stop interacting, treated members use the concierge). Age band and
    region are the membership's snapshot taken by the enrolment (`age_at_enrolment`, `region_at_enrolment`).

    Written as joins the database can hash (no subquery per member): at a million members a correlated lookup
    per member costs more than reading every row the report needs."""
    t = _tables()
    placeholders = ", ".join(f"'{c}'" for c in TAKE_UP_CHANNELS)
    month_start, year_before = _pre_window("b.enrolled_at")
    per_member = ["SUM(CASE WHEN pre = 1 THEN amount ELSE 0 END) AS x"]
    for i, months in enumerate(horizons):
        per_member.append(f"SUM(CASE WHEN rd >= 0 AND rd < {horizon_days(months)} THEN amount ELSE 0 END) AS y{i}")
    for k in range(REVENUE_MONTHS):
        per_member.append(
            f"SUM(CASE WHEN rd >= {k * DAYS_PER_MONTH} AND rd < {(k + 1) * DAYS_PER_MONTH} THEN amount ELSE 0 END)"
            f" AS m{k}"
        )
    revenue_columns = ["x", *(f"y{i}" for i in range(len(horizons))), *(f"m{k}" for k in range(REVENUE_MONTHS))]
    return f"""
    WITH eff AS (
        SELECT o.membership_id, o.outcome, o.observed_at,
               ROW_NUMBER() OVER (PARTITION BY o.membership_id ORDER BY o.observed_at DESC, o.id DESC) AS rn
        FROM {t["outcome"]} o
        JOIN {t["membership"]} mm ON mm.id = o.membership_id
        WHERE mm.programme_id = %(p)s AND o.observed_at <= %(as_of)s
          AND NOT EXISTS (SELECT 1 FROM {t["outcome"]} s WHERE s.supersedes_id = o.id)
    ),
    tc1 AS (
        SELECT tc.membership_id, tc.to_tier_id,
               ROW_NUMBER() OVER (PARTITION BY tc.membership_id ORDER BY tc.at, tc.id) AS rn
        FROM {t["tierchange"]} tc
        JOIN {t["membership"]} mm ON mm.id = tc.membership_id
        WHERE mm.programme_id = %(p)s AND tc.reason = 'enrolment'
    ),
    runs AS (
        SELECT r.id, r.as_of, LEAD(r.as_of) OVER (ORDER BY r.as_of, r.id) AS next_as_of
        FROM {t["scoringrun"]} r WHERE r.status = 'succeeded'
    ),
    base AS (
        SELECT m.id AS mid, m."group" AS grp, m.customer_id AS cid, m.enrolled_at AS enrolled_at,
            COALESCE(tc1.to_tier_id, m.tier_id, m.shadow_tier_id) AS tier_id,
            CASE WHEN e.outcome = 'churned' THEN 1
                 WHEN e.outcome IS NULL AND c.churned_at IS NOT NULL AND c.churned_at <= %(as_of)s THEN 1
                 ELSE 0 END AS event,
            CASE WHEN e.outcome = 'churned' THEN e.observed_at
                 WHEN e.outcome IS NULL AND c.churned_at IS NOT NULL AND c.churned_at <= %(as_of)s THEN c.churned_at
                 WHEN c.status = 'active' OR c.churned_at > %(as_of)s THEN %(as_of)s
                 ELSE e.observed_at END AS end_at,
            CASE WHEN cm.engagement_score IS NULL THEN -1
                 WHEN cm.engagement_score < 20 THEN 0 WHEN cm.engagement_score < 40 THEN 1
                 WHEN cm.engagement_score < 60 THEN 2 WHEN cm.engagement_score < 80 THEN 3
                 ELSE 4 END AS band,
            cm.scoring_run_id AS srun,
            CASE WHEN m.age_at_enrolment IS NULL THEN -1
                 WHEN m.age_at_enrolment < 25 THEN 0 WHEN m.age_at_enrolment < 35 THEN 1
                 WHEN m.age_at_enrolment < 45 THEN 2 WHEN m.age_at_enrolment < 55 THEN 3
                 WHEN m.age_at_enrolment < 65 THEN 4
                 ELSE 5 END AS age_band,
            m.region_at_enrolment AS region
        FROM {t["membership"]} m
        JOIN {t["customer"]} c ON c.id = m.customer_id
        LEFT JOIN eff e ON e.membership_id = m.id AND e.rn = 1
        LEFT JOIN tc1 ON tc1.membership_id = m.id AND tc1.rn = 1
        LEFT JOIN {t["segmentrun"]} sr ON sr.id = m.source_run_id
        LEFT JOIN runs ON sr.scoring_run_id IS NULL AND runs.as_of <= m.enrolled_at
             AND (runs.next_as_of IS NULL OR runs.next_as_of > m.enrolled_at)
        LEFT JOIN {t["metrics"]} cm ON cm.customer_id = m.customer_id
             AND cm.scoring_run_id = COALESCE(sr.scoring_run_id, runs.id)
        WHERE m.programme_id = %(p)s AND m.enrolled_at <= %(as_of)s
    ),
    tu AS (
        SELECT b.mid AS tmid FROM base b WHERE EXISTS (
            SELECT 1 FROM {t["interaction"]} i
            WHERE i.customer_id = b.cid AND i.channel IN ({placeholders})
              AND i.occurred_at >= b.enrolled_at AND i.occurred_at <= %(as_of)s)
    ),
    d AS (
        SELECT b.mid, b.grp, b.cid, b.enrolled_at, b.tier_id, b.event,
               CASE WHEN tu.tmid IS NULL THEN 0 ELSE 1 END AS took_up,
               b.band, b.srun, b.age_band, b.region,
               {_month("b.enrolled_at")} AS cohort,
               CASE WHEN b.end_at < b.enrolled_at THEN 0 ELSE {_floor(_days("b.end_at", "b.enrolled_at"))} END AS dur,
               {_floor(_days("%(as_of)s", "b.enrolled_at"))} AS age,
               {_day_number("b.enrolled_at")} AS enrolled_day, {month_start} AS pre_end, {year_before} AS pre_start
        FROM base b LEFT JOIN tu ON tu.tmid = b.mid
    ),
    rv AS (
        SELECT rmid, {", ".join(per_member)}
        FROM (  -- each line's day offset computed once (OFFSET 0 keeps PostgreSQL from inlining it per column)
            SELECT d.mid AS rmid, {_float("r.amount")} AS amount,
                   {_day_number("r.period", date=True)} - d.enrolled_day AS rd,
                   CASE WHEN r.period < d.pre_end AND r.period >= d.pre_start THEN 1 ELSE 0 END AS pre
            FROM d JOIN {t["revenue"]} r ON r.customer_id = d.cid AND r.period >= d.pre_start
            {"OFFSET 0" if _pg() else ""}
        ) lines
        GROUP BY rmid
    )
    SELECT d.mid, d.grp, d.cid, d.enrolled_at, d.tier_id, d.event, d.took_up, d.band, d.srun, d.age_band, d.region,
           d.cohort, d.dur, d.age, {", ".join(f"COALESCE(rv.{c}, 0) AS {c}" for c in revenue_columns)}
    FROM d LEFT JOIN rv ON rv.rmid = d.mid
    """


def _fetch(sql: str, params: dict | list | None = None) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _aware(value) -> datetime | None:
    """A timestamp read back from the member table (SQLite returns its text)."""
    if value is None or isinstance(value, datetime):
        return value
    parsed = parse_datetime(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


_table_seq = itertools.count(1)


class ImpactMembers:
    """The per-member aggregation of an impact report, computed once (one statement over memberships, their
    customers, outcomes, enrolment tier changes, baseline metrics, take-up interactions and revenue) into a
    temporary table; every figure of the report is then an aggregate over that table. Use as a context manager:
    the table is dropped at the end."""

    def __init__(self, *, programme_id: int, as_of: datetime, horizons: Sequence[int]):
        self.programme_id, self.as_of, self.horizons = programme_id, as_of, list(horizons)
        self.table = f"impact_members_{next(_table_seq)}"

    def __enter__(self) -> ImpactMembers:
        # One transaction: on PostgreSQL its settings are local to it (JIT compilation costs seconds per query
        # here and saves nothing; the per-member aggregate must not spill to disk).
        self._atomic = transaction.atomic()
        self._atomic.__enter__()
        try:
            params = _params(self.programme_id, self.as_of)
            with connection.cursor() as cursor:
                if _pg():
                    cursor.execute("SET LOCAL jit = off; SET LOCAL work_mem = '256MB'")
                cursor.execute(f"CREATE TEMPORARY TABLE {self.table} AS {_members_sql(self.horizons)}", params)
                if _pg():
                    cursor.execute(f"ANALYZE {self.table}")
        except BaseException:
            self._atomic.__exit__(*sys.exc_info())
            raise
        return self

    def __exit__(self, *exc) -> None:
        try:
            if exc[0] is None:
                with connection.cursor() as cursor:
                    cursor.execute(f"DROP TABLE {self.table}")
        finally:
            self._atomic.__exit__(*exc)

    def cells(self) -> list[Cell]:
        columns = []
        for i, months in enumerate(self.horizons):
            h = horizon_days(months)
            columns.append(
                f"SUM(CASE WHEN age >= {h} AND (dur >= {h} OR (event = 1 AND dur <= {h})) THEN 1 ELSE 0 END) AS e{i}"
            )
            columns.append(f"SUM(CASE WHEN age >= {h} AND event = 1 AND dur <= {h} THEN 1 ELSE 0 END) AS c{i}")
        keys = "grp, tier_id, cohort, took_up, band, age_band, region"
        rows = _fetch(
            f"SELECT {keys}, COUNT(*), {', '.join(columns)} FROM {self.table} GROUP BY {keys} ORDER BY {keys}"
        )
        k = len(self.horizons)
        return [
            Cell(
                group=r[0],
                tier_id=r[1],
                cohort=r[2],
                took_up=bool(r[3]),
                band=int(r[4]),
                age_band=int(r[5]),
                region=r[6] or "",
                members=int(r[7]),
                evaluable=tuple(int(r[8 + 2 * i] or 0) for i in range(k)),
                churned=tuple(int(r[9 + 2 * i] or 0) for i in range(k)),
            )
            for r in rows
        ]

    def survival_counts(self) -> list[tuple[str, int, int, int]]:
        """(group, tenure days, event 0/1, members): the whole survival data, aggregated."""
        sql = f"SELECT grp, dur, event, COUNT(*) FROM {self.table} GROUP BY grp, dur, event ORDER BY grp, dur, event"
        return [(r[0], int(r[1]), int(r[2]), int(r[3])) for r in _fetch(sql)]

    def revenue_by_month(self) -> list[tuple[str, int, float, int]]:
        """(group, month since enrolment k, revenue in month k, members enrolled at least k+1 months ago).
        Only members old enough to have completed month k count, in numerator and denominator alike."""
        columns = [
            f"SUM(CASE WHEN age >= {(k + 1) * DAYS_PER_MONTH} THEN m{k} ELSE 0 END), "
            f"SUM(CASE WHEN age >= {(k + 1) * DAYS_PER_MONTH} THEN 1 ELSE 0 END)"
            for k in range(REVENUE_MONTHS)
        ]
        result = []
        for row in _fetch(f"SELECT grp, {', '.join(columns)} FROM {self.table} GROUP BY grp ORDER BY grp"):
            for k in range(REVENUE_MONTHS):
                total, members = float(row[1 + 2 * k] or 0), int(row[2 + 2 * k] or 0)
                if members:
                    result.append((row[0], k, total, members))
        return result

    def revenue_moments(self) -> list[RevenueMoments]:
        outer = []
        for i, months in enumerate(self.horizons):
            ok = f"age >= {horizon_days(months)}"
            outer += [
                f"SUM(CASE WHEN {ok} THEN 1 ELSE 0 END)",
                f"SUM(CASE WHEN {ok} THEN x ELSE 0 END)",
                f"SUM(CASE WHEN {ok} THEN y{i} ELSE 0 END)",
                f"SUM(CASE WHEN {ok} THEN x * x ELSE 0 END)",
                f"SUM(CASE WHEN {ok} THEN y{i} * y{i} ELSE 0 END)",
                f"SUM(CASE WHEN {ok} THEN x * y{i} ELSE 0 END)",
            ]
        result = []
        for row in _fetch(f"SELECT grp, {', '.join(outer)} FROM {self.table} GROUP BY grp ORDER BY grp"):
            for i, months in enumerate(self.horizons):
                v = [float(x or 0) for x in row[1 + 6 * i : 7 + 6 * i]]
                result.append(RevenueMoments(row[0], months, int(v[0]), v[1], v[2], v[3], v[4], v[5]))
        return result

    def baseline_scoring_runs(self) -> list[int]:
        """The scoring runs the engagement bands come from (those the enrolments used)."""
        sql = f"SELECT DISTINCT srun FROM {self.table} WHERE srun IS NOT NULL ORDER BY 1"
        return [int(r[0]) for r in _fetch(sql)]

    def nth_enrolment(self, n: int) -> dict[str, datetime | None]:
        """Per group, when its n-th earliest member was enrolled; None if it has fewer."""
        out: dict[str, datetime | None] = {"treatment": None, "control": None}
        if n < 1:
            return out
        sql = (
            "SELECT grp, enrolled_at FROM (SELECT grp, enrolled_at, "
            f"ROW_NUMBER() OVER (PARTITION BY grp ORDER BY enrolled_at, mid) AS rn FROM {self.table}) s "
            "WHERE rn = %s"
        )
        for group, enrolled in _fetch(sql, [n]):
            if group in out:
                out[group] = _aware(enrolled)
        return out

    def revenue(self):
        return self.revenue_by_month(), self.revenue_moments(), self.last_enrolment()

    def last_enrolment(self) -> datetime | None:
        """When the latest member enrolled by `as_of` was enrolled."""
        return _aware(_fetch(f"SELECT MAX(enrolled_at) FROM {self.table}")[0][0])
