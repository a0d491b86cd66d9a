"""Set-based aggregation for the impact report. Every query runs in the database and returns aggregates
(a few hundred rows at most, whatever the programme size); statistics are computed on those in
`loyalty.retention.services.impact`. Works on SQLite and PostgreSQL (vendor branches only for date arithmetic).

Per membership (intention to treat: the group it was assigned, whatever it did):
- the *effective* outcome is the latest (by observed_at) outcome that no other outcome supersedes;
- churned at its observed_at if that outcome is `churned`; without any outcome, churned at the customer's
  `churned_at` (if any); otherwise censored: at `as_of` if the customer is still active, else at the last
  observation;
- tenure in whole days from enrolment to churn or censoring; `age` in whole days from enrolment to as_of.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
from django.db import connection, transaction

from loyalty.customers.models import Customer, Interaction, RevenueEntry
from loyalty.programmes.models import Membership, TierChange
from loyalty.retention.models import RetentionOutcome
from loyalty.segmentation.models import CustomerMetrics, RevenueDayRollup, RunStatus, ScoringRun, SegmentRun

DAYS_PER_MONTH = 365.25 / 12
PRE_PERIOD_DAYS = 365
TAKE_UP_CHANNELS = ("concierge", "event")
ENGAGEMENT_BANDS = ("0-20", "20-40", "40-60", "60-80", "80-100")
AGE_BANDS = ("under 25", "25-34", "35-44", "45-54", "55-64", "65 and over")


def horizon_days(months: int) -> int:
    return round(months * DAYS_PER_MONTH)


def _pg() -> bool:
    return connection.vendor == "postgresql"


def _tables() -> dict[str, str]:
    return {
        "outcome": RetentionOutcome._meta.db_table,
        "membership": Membership._meta.db_table,
        "customer": Customer._meta.db_table,
        "tierchange": TierChange._meta.db_table,
        "interaction": Interaction._meta.db_table,
        "metrics": CustomerMetrics._meta.db_table,
        "revenue": RevenueEntry._meta.db_table,
        "segmentrun": SegmentRun._meta.db_table,
        "scoringrun": ScoringRun._meta.db_table,
    }


REVENUE_MONTHS = 12  # revenue per customer month by month, for the first twelve months after enrolment


def _day_number(expr: str, *, date: bool = False) -> str:
    """Days since 1970-01-01 as a float (a timestamp) or an integer (a date, on PostgreSQL)."""
    if _pg():
        if date:
            return f"({expr} - DATE '1970-01-01')"
        return f"(CAST(EXTRACT(EPOCH FROM {expr}) AS double precision) / 86400.0)"
    return f"(julianday({expr}) - 2440587.5)"


def _fetch(sql: str, params: dict | list | None = None) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


# --- per-member arrays -------------------------------------------------------------------------------------

DAY_US = 86_400_000_000
PG_EPOCH_US = 946_684_800_000_000  # PostgreSQL's binary timestamps count microseconds from 2000-01-01
PG_EPOCH_DAYS = 10_957  # and its dates days from 2000-01-01
NONE_AT = np.iinfo(np.int64).min  # a missing timestamp (binary -infinity)
# Engagement bands (0-100 in steps of 20) and age bands at enrolment: the lower edge of each band.
_BAND_EDGES = np.array([20.0, 40.0, 60.0, 80.0])
_AGE_EDGES = np.array([25, 35, 45, 55, 65])

# Per member: churned (1) at the effective outcome if it is `churned`; without any outcome, churned at the
# customer's churned_at if that is by as_of; otherwise censored: at as_of if the customer is still active (or churned
# after as_of), else at the last observation.
_EVENT = (
    "CASE WHEN e.outcome = 'churned' THEN 1"
    " WHEN e.outcome IS NULL AND c.churned_at IS NOT NULL AND c.churned_at <= %(as_of)s THEN 1 ELSE 0 END"
)
_END_AT = (
    "CASE WHEN e.outcome = 'churned' THEN e.observed_at"
    " WHEN e.outcome IS NULL AND c.churned_at IS NOT NULL AND c.churned_at <= %(as_of)s THEN c.churned_at"
    " WHEN c.status = 'active' OR c.churned_at > %(as_of)s THEN %(as_of)s"
    " ELSE e.observed_at END"
)
# Small values packed into one integer (each field of a binary COPY row costs as much to send as a join costs):
# bit 0 treatment, bit 1 churn event, bit 2 took the programme up (a concierge or event interaction between the
# enrolment and as_of), bits 3 and up the age at enrolment plus one (0: birth year unknown).
_FLAGS = (
    "(CASE WHEN m.\"group\" = 'treatment' THEN 1 ELSE 0 END)"
    f" + 2 * ({_EVENT})"
    " + 4 * (CASE WHEN tu.last_at >= m.enrolled_at THEN 1 ELSE 0 END)"
    " + 8 * (COALESCE(m.age_at_enrolment, -1) + 1)"
)

# (name, PostgreSQL expression, numpy type of its binary form) of each per-member column; SQLite reads the same
# expressions (`_sqlite_members`). No column is null (COALESCE to sentinels), so PostgreSQL's binary COPY rows have
# a fixed layout that numpy reads without a loop.
_MEMBER_COLUMNS = (
    ("cid", "m.customer_id", ">i8"),
    ("enrolled", "m.enrolled_at", ">i8"),
    ("ended", f"COALESCE({_END_AT}, '-infinity')", ">i8"),
    ("tier", "COALESCE(tc1.to_tier_id, m.tier_id, m.shadow_tier_id, -1)", ">i8"),
    ("flags", f"CAST({_FLAGS} AS integer)", ">i4"),
    ("score", "CAST(COALESCE(cm.engagement_score, -1) AS double precision)", ">f8"),
    ("srun", "COALESCE(cm.scoring_run_id, -1)", ">i8"),
    ("region", "hashtextextended(m.region_at_enrolment, 0)", ">i8"),
)


def _members_sql(columns: str) -> str:
    """One row per membership enrolled by as_of (parameters, named: p, as_of) with the facts its figures come
    from: customer, enrolment time, when it churned or was last observed (`_END_AT`), tier at enrolment (the
    enrolment tier change; shadow tier for control), group, churn event, take-up and age at enrolment (packed,
    `_FLAGS`), the engagement score and scoring run at enrolment, and the region at enrolment. The effective
    outcome is the latest (by observed_at, by as_of) that no correction supersedes. Everything else (tenure, age,
    bands, cohort, revenue windows, every aggregate) is computed on the arrays in numpy (`ImpactMembers`).

    Subgroups are baseline only: the engagement band comes from the scoring run the enrolment used (the
    membership's source segment run), or, without one, the latest succeeded scoring run as of the enrolment;
    never from a run after it (churners stop interacting, treated members use the concierge).

    Written as joins the database can hash (no subquery per member)."""
    t = _tables()
    placeholders = ", ".join(f"'{c}'" for c in TAKE_UP_CHANNELS)
    if _pg():  # the latest outcome per membership: DISTINCT ON sorts once, no window
        eff = f"""SELECT DISTINCT ON (o.membership_id) o.membership_id, o.outcome, o.observed_at
            FROM {t["outcome"]} o
            WHERE o.observed_at <= %(as_of)s
              AND NOT EXISTS (SELECT 1 FROM {t["outcome"]} s WHERE s.supersedes_id = o.id)
            ORDER BY o.membership_id, o.observed_at DESC, o.id DESC"""
    else:
        eff = f"""SELECT membership_id, outcome, observed_at FROM (
            SELECT o.membership_id, o.outcome, o.observed_at,
                   ROW_NUMBER() OVER (PARTITION BY o.membership_id ORDER BY o.observed_at DESC, o.id DESC) AS rn
            FROM {t["outcome"]} o
            WHERE o.observed_at <= %(as_of)s
              AND NOT EXISTS (SELECT 1 FROM {t["outcome"]} s WHERE s.supersedes_id = o.id)) ranked
            WHERE rn = 1"""
    return f"""
    SELECT {columns}
    FROM {t["membership"]} m
    JOIN {t["customer"]} c ON c.id = m.customer_id
    LEFT JOIN ({eff}) e ON e.membership_id = m.id
    LEFT JOIN (
        SELECT membership_id, to_tier_id FROM (
            SELECT tc.membership_id, tc.to_tier_id,
                   ROW_NUMBER() OVER (PARTITION BY tc.membership_id ORDER BY tc.at, tc.id) AS rn
            FROM {t["tierchange"]} tc WHERE tc.reason = 'enrolment') ranked
        WHERE rn = 1
    ) tc1 ON tc1.membership_id = m.id
    LEFT JOIN {t["segmentrun"]} sr ON sr.id = m.source_run_id
    LEFT JOIN (
        SELECT r.id, r.as_of, LEAD(r.as_of) OVER (ORDER BY r.as_of, r.id) AS next_as_of
        FROM {t["scoringrun"]} r WHERE r.status = 'succeeded'
    ) runs ON sr.scoring_run_id IS NULL AND runs.as_of <= m.enrolled_at
         AND (runs.next_as_of IS NULL OR runs.next_as_of > m.enrolled_at)
    LEFT JOIN {t["metrics"]} cm ON cm.customer_id = m.customer_id
         AND cm.scoring_run_id = COALESCE(sr.scoring_run_id, runs.id)
    LEFT JOIN (
        SELECT i.customer_id, MAX(i.occurred_at) AS last_at FROM {t["interaction"]} i
        WHERE i.channel IN ({placeholders}) AND i.occurred_at <= %(as_of)s
        GROUP BY i.customer_id
    ) tu ON tu.customer_id = m.customer_id
    WHERE m.programme_id = %(p)s AND m.enrolled_at <= %(as_of)s
    """


def _revenue_sql(columns: str) -> str:
    """The revenue rollup rows (customer, day, cents) of the programme's members enrolled by as_of, from the
    earliest CUPED pre-period on (parameter `since`)."""
    t = _tables()
    return (
        f"SELECT {columns} FROM {RevenueDayRollup._meta.db_table} r WHERE r.day >= %(since)s AND r.customer_id IN "
        f"(SELECT customer_id FROM {t['membership']} WHERE programme_id = %(p)s AND enrolled_at <= %(as_of)s)"
    )


def _copy_binary(sql: str, params: dict, dtype: list[tuple[str, str]]) -> np.ndarray:
    """Run a SELECT as PostgreSQL's binary COPY and read its fixed-width rows (no nulls) as a numpy record
    array: per row a field count, then per field a length and the value."""
    import io

    with connection.cursor() as cursor:
        statement = f"COPY ({cursor.mogrify(sql, params).decode()}) TO STDOUT WITH (FORMAT binary)"
        buffer = io.BytesIO()
        started = time.monotonic()
        cursor.cursor.copy_expert(statement, buffer)
        if connection.queries_logged:  # copy_expert bypasses Django's cursor wrapper: log it like a query
            connection.queries_log.append({"sql": statement, "time": f"{time.monotonic() - started:.3f}"})
    data = buffer.getbuffer()
    layout = [("n", ">i2")]
    for name, kind in dtype:
        layout += [(f"{name}_len", ">i4"), (name, kind)]
    record = np.dtype(layout)
    header = 19 + int.from_bytes(data[15:19], "big")  # signature, flags, extension length and extension
    count = (len(data) - header - 2) // record.itemsize
    return np.frombuffer(data, dtype=record, count=count, offset=header)


def _us(value) -> int:
    """Microseconds since 1970 of a timestamp SQLite returns as text (naive UTC)."""
    if value is None:
        return NONE_AT
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    delta = parsed - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _sqlite_members(params: dict) -> dict[str, np.ndarray]:
    raw = {"ended": _END_AT, "region": "m.region_at_enrolment"}
    names = [name for name, _, _ in _MEMBER_COLUMNS]
    columns = ", ".join(raw.get(name, expr) for name, expr, _ in _MEMBER_COLUMNS)
    rows = _fetch(_members_sql(columns), params)
    values = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    out: dict[str, np.ndarray] = {}
    for name, column in zip(names, values, strict=True):
        if name in ("enrolled", "ended"):
            out[name] = np.array([_us(v) for v in column], dtype=np.int64)
        elif name == "region":
            out[name] = np.array([v or "" for v in column], dtype=object)
        elif name == "score":
            out[name] = np.array(column, dtype=np.float64)
        else:
            out[name] = np.array(column, dtype=np.int64)
    return out


class ImpactMembers:
    """The per-member data of an impact report, read once: one statement over memberships and their customers, outcomes,
    enrolment tier changes, baseline metrics and take-up interactions, and one over the revenue rollup
    (`RevenueDayRollup`; the report applies pending ingestion batches to it first) of those members. Every figure of
    the report is then an aggregate of these arrays, computed in numpy (vectorised, no loop over members). On
    PostgreSQL both statements are read as binary COPY straight into numpy arrays.

    Per membership (intention to treat: the group it was assigned, whatever it did): the churn event and the
    time of churn or censoring as `_EVENT` and `_END_AT` define them; tenure `dur` in whole days from enrolment to
    churn or censoring (0 if that lies before the enrolment); `age` in whole days from enrolment to as_of."""

    def __init__(self, *, programme_id: int, as_of: datetime, horizons: Sequence[int]):
        self.programme_id, self.as_of, self.horizons = programme_id, as_of, list(horizons)

    def __enter__(self) -> ImpactMembers:
        # One transaction: on PostgreSQL its settings are local to it (JIT compilation costs seconds per query
        # here and saves nothing; the hash joins must not spill to disk), and, when it is not nested in another,
        # both statements read one snapshot (repeatable read).
        params = _params(self.programme_id, self.as_of)
        outermost = not connection.in_atomic_block
        with transaction.atomic():
            if _pg():
                with connection.cursor() as cursor:
                    if outermost:
                        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                    cursor.execute("SET LOCAL jit = off; SET LOCAL work_mem = '256MB'")
                columns = ", ".join(f"{expr} AS {name}" for name, expr, _ in _MEMBER_COLUMNS)
                rows = _copy_binary(_members_sql(columns), params, [(n, k) for n, _, k in _MEMBER_COLUMNS])
                a = {
                    name: rows[name].astype(np.float64 if kind == ">f8" else np.int64)
                    for name, _, kind in _MEMBER_COLUMNS
                }
                for name in ("enrolled", "ended"):
                    known = a[name] != NONE_AT
                    a[name] = np.where(known, a[name] + PG_EPOCH_US, NONE_AT)
            else:
                a = _sqlite_members(params)
            self._derive(a)
            self._read_revenue(params)
        return self

    def __exit__(self, *exc) -> None:
        return None

    # -- derived per-member values, vectorised --

    def _derive(self, a: dict[str, np.ndarray]) -> None:
        order = np.argsort(a["cid"], kind="stable")  # by customer: the revenue rows find their member by search
        a = {k: v[order] for k, v in a.items()}
        self.a = a
        as_of = _us(self.as_of)
        enrolled, end, flags = a["enrolled"], a["ended"], a["flags"]
        if np.any(end == NONE_AT):  # not active, no churn date and no outcome: the constraints exclude it
            raise ValueError("A membership has neither an outcome nor a churn date nor an active customer.")
        self.treated = flags & 1
        self.event = (flags >> 1) & 1
        self.took_up = (flags >> 2) & 1
        years = (flags >> 3) - 1
        self.dur = np.where(end < enrolled, 0, (end - enrolled) // DAY_US)
        self.age = (as_of - enrolled) // DAY_US
        score = a["score"]
        self.band = np.where(score < 0, -1, np.searchsorted(_BAND_EDGES, score, side="right"))
        self.age_band = np.where(years < 0, -1, np.searchsorted(_AGE_EDGES, years, side="right"))
        months = enrolled.astype("datetime64[us]").astype("datetime64[M]")
        self.cohort_month = months.astype(np.int64)
        self.pre_end = months.astype("datetime64[D]").astype(np.int64)  # first day of the enrolment month
        self.pre_start = (months - 12).astype("datetime64[D]").astype(np.int64)
        self.enrolled_day = (enrolled / 1e6) / 86400.0

    def _region_names(self) -> tuple[np.ndarray, dict]:
        """Region codes per member and their names (PostgreSQL sends a 64-bit hash of the text; the names of the
        codes seen are read back by one representative membership each, by programme and customer)."""
        region = self.a["region"]
        if region.dtype == object:
            names, codes = np.unique(region.astype(str), return_inverse=True)
            return codes, dict(enumerate(names.tolist()))
        values, first, codes = np.unique(region, return_index=True, return_inverse=True)
        customers = [int(self.a["cid"][i]) for i in first]
        names = dict(
            Membership.objects.filter(programme_id=self.programme_id, customer_id__in=customers).values_list(
                "customer_id", "region_at_enrolment"
            )
        )
        return codes, {k: names[cid] for k, cid in enumerate(customers)}

    def cells(self) -> list[Cell]:
        if not len(self.age):
            return []
        region_codes, region_names = self._region_names()
        columns = [
            1 - self.treated,  # control sorts before treatment, as by name
            self.a["tier"],
            self.cohort_month,
            self.took_up,
            self.band,
            self.age_band,
            region_codes,
        ]
        unique, inverse = _group(columns)
        size = len(unique)
        members = np.bincount(inverse, minlength=size)
        evaluable, churned = [], []
        for months in self.horizons:
            h = horizon_days(months)
            old = self.age >= h
            lost = (self.event == 1) & (self.dur <= h)
            evaluable.append(np.bincount(inverse, weights=old & ((self.dur >= h) | lost), minlength=size))
            churned.append(np.bincount(inverse, weights=old & lost, minlength=size))
        cohorts = np.datetime_as_string(unique[:, 2].astype("datetime64[M]"), unit="M")
        return [
            Cell(
                group="control" if row[0] else "treatment",
                tier_id=None if row[1] < 0 else int(row[1]),
                cohort=str(cohorts[j]),
                took_up=bool(row[3]),
                band=int(row[4]),
                age_band=int(row[5]),
                region=region_names[int(row[6])] or "",
                members=int(members[j]),
                evaluable=tuple(int(e[j]) for e in evaluable),
                churned=tuple(int(c[j]) for c in churned),
            )
            for j, row in enumerate(unique.tolist())
        ]

    def survival_counts(self) -> list[tuple[str, int, int, int]]:
        """(group, tenure days, event 0/1, members): the whole survival data, aggregated."""
        if not len(self.age):
            return []
        unique, inverse = _group([1 - self.treated, self.dur, self.event])
        counts = np.bincount(inverse, minlength=len(unique))
        return [
            ("control" if g else "treatment", int(d), int(e), int(n))
            for (g, d, e), n in zip(unique.tolist(), counts.tolist(), strict=True)
        ]

    def _read_revenue(self, params: dict) -> None:
        """Per member: `x` (revenue of the CUPED pre-period), `y[i]` (the first horizons[i] days after
        enrolment) and `m[k]` (month k after enrolment), from its rollup rows, summed in cents (exact)."""
        n = len(self.age)
        self.x = np.zeros(n)
        self.y = np.zeros((len(self.horizons), n))
        self.m = np.zeros((REVENUE_MONTHS, n))
        if not n:
            return
        since = datetime.fromtimestamp(int(self.pre_start.min()) * 86400, tz=UTC).date()
        params = {**params, "since": connection.ops.adapt_datefield_value(since)}
        if _pg():
            rows = _copy_binary(
                _revenue_sql("r.customer_id, r.day, r.amount_minor"),
                params,
                [("cid", ">i8"), ("day", ">i4"), ("cents", ">i8")],
            )
            cid, day, cents = rows["cid"], rows["day"].astype(np.int64) + PG_EPOCH_DAYS, rows["cents"]
        else:
            fetched = _fetch(_revenue_sql(f"r.customer_id, {_day_number('r.day')}, r.amount_minor"), params)
            cid = np.array([r[0] for r in fetched], dtype=np.int64)
            day = np.array([round(r[1]) for r in fetched], dtype=np.int64)
            cents = np.array([r[2] for r in fetched], dtype=np.int64)
        member = np.minimum(np.searchsorted(self.a["cid"], cid), n - 1)
        # Rows of a customer enrolled after the members statement read its snapshot (a nested transaction reads
        # each statement's own) belong to no member read here: left out.
        keep = (self.a["cid"][member] == cid) & (day >= self.pre_start[member])
        member, day, cents = member[keep], day[keep], cents[keep].astype(np.float64)
        rd = day - self.enrolled_day[member]
        pre = day < self.pre_end[member]
        self.x = np.bincount(member, weights=np.where(pre, cents, 0.0), minlength=n) / 100.0
        for i, months in enumerate(self.horizons):
            inside = (rd >= 0) & (rd < horizon_days(months))
            self.y[i] = np.bincount(member, weights=np.where(inside, cents, 0.0), minlength=n) / 100.0
        for k in range(REVENUE_MONTHS):
            inside = (rd >= k * DAYS_PER_MONTH) & (rd < (k + 1) * DAYS_PER_MONTH)
            self.m[k] = np.bincount(member, weights=np.where(inside, cents, 0.0), minlength=n) / 100.0

    def revenue(self) -> tuple[list[tuple[str, int, float, int]], list[RevenueMoments], datetime | None]:
        """Revenue by month: (group, month since enrolment k, revenue in month k, members enrolled at least k+1
        months ago); only members old enough to have completed month k count, in numerator and denominator
        alike. The CUPED moments per group and horizon (`RevenueMoments`). When the latest member was enrolled."""
        by_month, moments = [], []
        for group, treated in (("control", 0), ("treatment", 1)):
            mine = self.treated == treated
            if not mine.any():
                continue
            for k in range(REVENUE_MONTHS):
                ok = mine & (self.age >= (k + 1) * DAYS_PER_MONTH)
                if ok.any():
                    by_month.append((group, k, float(self.m[k][ok].sum()), int(ok.sum())))
            for i, months in enumerate(self.horizons):
                ok = mine & (self.age >= horizon_days(months))
                x, y = self.x[ok], self.y[i][ok]
                moments.append(
                    RevenueMoments(
                        group,
                        months,
                        int(ok.sum()),
                        float(x.sum()),
                        float(y.sum()),
                        float(x @ x),
                        float(y @ y),
                        float(x @ y),
                    )
                )
        return by_month, moments, self.last_enrolment()

    def last_enrolment(self) -> datetime | None:
        """When the latest member enrolled by `as_of` was enrolled."""
        if not len(self.age):
            return None
        return _from_us(int(self.a["enrolled"].max()))

    def baseline_scoring_runs(self) -> list[int]:
        """The scoring runs the engagement bands come from (those the enrolments used)."""
        runs = self.a["srun"]
        return [int(r) for r in np.unique(runs[runs >= 0])]

    def nth_enrolment(self, n: int) -> dict[str, datetime | None]:
        """Per group, when its n-th earliest member was enrolled; None if it has fewer."""
        out: dict[str, datetime | None] = {"treatment": None, "control": None}
        if n < 1:
            return out
        for group, treated in (("treatment", 1), ("control", 0)):
            enrolled = np.sort(self.a["enrolled"][self.treated == treated])
            if len(enrolled) >= n:
                out[group] = _from_us(int(enrolled[n - 1]))
        return out


def _group(columns: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of integer columns, sorted (as SQL's GROUP BY ... ORDER BY), and each member's row
    among them: each column is replaced by its rank among its own distinct values, and the ranks are combined
    into one integer, so one 1-d sort does what a sort of rows would (several times faster)."""
    combined = np.zeros(len(columns[0]), dtype=np.int64)
    values = []
    for column in columns:
        distinct, rank = np.unique(column, return_inverse=True)
        values.append(distinct)
        combined = combined * len(distinct) + rank.reshape(-1)
    keys, inverse = np.unique(combined, return_inverse=True)
    rows = np.empty((len(keys), len(columns)), dtype=np.int64)
    rest = keys.copy()
    for j in range(len(columns) - 1, -1, -1):
        rows[:, j] = values[j][rest % len(values[j])]
        rest //= len(values[j])
    return rows, inverse.reshape(-1)


def _from_us(value: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=value)


@dataclass(frozen=True)
class Cell:
    """Members of one (group, tier, cohort, took_up, band, age band, region) combination and, per horizon, how
    many are evaluable (enrolled at least the horizon ago and observed until it or churned before it) and how
    many of those churned within the horizon."""

    group: str
    tier_id: int | None
    cohort: str
    took_up: bool
    band: int
    age_band: int
    region: str
    members: int
    evaluable: tuple[int, ...]
    churned: tuple[int, ...]


def latest_scoring_run_id(*, as_of: datetime) -> int | None:
    return (
        ScoringRun.objects.filter(status=RunStatus.SUCCEEDED, as_of__lte=as_of)
        .order_by("-as_of", "-id")
        .values_list("id", flat=True)
        .first()
    )


def _params(programme_id: int, as_of: datetime) -> dict:
    return {"p": programme_id, "as_of": connection.ops.adapt_datetimefield_value(as_of)}


@dataclass(frozen=True)
class RevenueMoments:
    """Sums over members of one group evaluable at a horizon: X = revenue of the twelve whole months before the
    enrolment month (`_pre_window`),
    Y = revenue in the first `months` after enrolment."""

    group: str
    months: int
    n: int
    sx: float
    sy: float
    sxx: float
    syy: float
    sxy: float


def outcomes_list(
    *,
    programme_id: int | None = None,
    membership_id: int | None = None,
    customer_id: int | None = None,
    include_superseded: bool = True,
):
    """Outcomes newest first, with whether a correction superseded each (one query per page)."""
    from django.db.models import Exists, OuterRef

    qs = RetentionOutcome.objects.annotate(
        is_superseded=Exists(RetentionOutcome.objects.filter(supersedes_id=OuterRef("pk")))
    ).order_by("-observed_at", "-id")
    if programme_id is not None:
        qs = qs.filter(membership__programme_id=programme_id)
    if membership_id is not None:
        qs = qs.filter(membership_id=membership_id)
    if customer_id is not None:
        qs = qs.filter(membership__customer_id=customer_id)
    if not include_superseded:
        qs = qs.filter(is_superseded=False)
    return qs
