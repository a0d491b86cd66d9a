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
from datetime import UTC, date, datetime, timedelta

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

# Each table is read by itself, only the columns the report needs, and the rows are joined in numpy by sorted ids or
# a table of positions (`_Keys`): no join in the database (at a million memberships a hash join with the customers
# costs more than reading both tables). A read of another table's rows is limited to the programme's members by a
# range of ids when their ids are dense (members enrolled in bulk: the usual case), else by a semi-join with the
# memberships; rows of non-members are dropped in numpy either way.
_DENSE = 4  # a range of ids is the filter when it spans at most this many times the ids it covers


def _ts(expr: str) -> str:
    """A nullable timestamp column: -infinity (binary: NONE_AT) for null on PostgreSQL; SQLite gives None."""
    return f"COALESCE({expr}, '-infinity')" if _pg() else expr


def _read(sql: str, params: dict, fields: Sequence[tuple[str, str]]) -> dict[str, np.ndarray]:
    """The rows of a SELECT as one numpy array per field (name, kind): kind `i8` or `i4` (integer), `f8`, `ts`
    (microseconds since 1970, NONE_AT for null), `day` (days since 1970: a date on PostgreSQL, `_day_number` of it
    on SQLite) or `text` (SQLite). On PostgreSQL by binary COPY, no field null (COALESCE to a sentinel)."""
    if _pg():
        binary = {"i8": ">i8", "i4": ">i4", "f8": ">f8", "ts": ">i8", "day": ">i4"}
        rows = _copy_binary(sql, params, [(name, binary[kind]) for name, kind in fields])
        out = {}
        for name, kind in fields:
            column = rows[name].astype(np.float64 if kind == "f8" else np.int64)
            if kind == "ts":
                column = np.where(column != NONE_AT, column + PG_EPOCH_US, NONE_AT)
            elif kind == "day":
                column += PG_EPOCH_DAYS
            out[name] = column
        return out
    rows = _fetch(sql, params)
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in fields]
    out = {}
    for (name, kind), column in zip(fields, columns, strict=True):
        if kind == "ts":
            out[name] = np.array([_us(v) for v in column], dtype=np.int64)
        elif kind == "day":
            out[name] = np.array([round(v) for v in column], dtype=np.int64)
        elif kind == "f8":
            out[name] = np.array(column, dtype=np.float64)
        elif kind == "text":
            out[name] = np.array([v or "" for v in column], dtype=object)
        else:
            out[name] = np.array(column, dtype=np.int64)
    return out


class _Keys:
    """The members' ids (membership or customer ids, each at most once): where other rows' ids are among them, and
    the SQL filter that reads only such rows (a superset)."""

    def __init__(self, keys: np.ndarray, *, column: str):
        self.keys, self.column = keys, column
        self.lo, self.hi = (int(keys.min()), int(keys.max())) if len(keys) else (0, -1)
        self.dense = bool(len(keys)) and self.hi - self.lo + 1 <= _DENSE * len(keys)
        if self.dense:
            self.table = np.full(self.hi - self.lo + 1, -1, dtype=np.int64)
            self.table[keys - self.lo] = np.arange(len(keys))
        else:
            self.order = np.argsort(keys, kind="stable")
            self.sorted = keys[self.order]

    def find(self, ids: np.ndarray) -> np.ndarray:
        """Each id's member position, -1 for an id that is no member's."""
        if self.dense:
            if not len(ids) or (int(ids.min()) >= self.lo and int(ids.max()) <= self.hi):  # the range filter's rows
                return self.table[ids - self.lo]
            inside = (ids >= self.lo) & (ids <= self.hi)
            out = np.full(len(ids), -1, dtype=np.int64)
            out[inside] = self.table[ids[inside] - self.lo]
            return out
        if not len(self.sorted):
            return np.full(len(ids), -1, dtype=np.int64)
        j = np.minimum(np.searchsorted(self.sorted, ids), len(self.sorted) - 1)
        return np.where(self.sorted[j] == ids, self.order[j], -1)

    def where(self, expr: str) -> str:
        """A predicate on `expr` true for every member's id (an id range when dense, else a semi-join)."""
        if self.dense:
            return f"{expr} BETWEEN {self.lo} AND {self.hi}"
        return (
            f"{expr} IN (SELECT {self.column} FROM {Membership._meta.db_table} "
            "WHERE programme_id = %(p)s AND enrolled_at <= %(as_of)s)"
        )


def _latest_per_membership(keys: _Keys, *, table: str, columns: Sequence[str], where: str, order: str) -> str:
    """The first row per membership (by `order`) of the members' rows of `table` (alias `o`) that satisfy `where`:
    membership id and `columns`. DISTINCT ON on PostgreSQL (one sort, no window), ROW_NUMBER on SQLite."""
    if _pg():
        return (
            f"SELECT DISTINCT ON (o.membership_id) o.membership_id, {', '.join(columns)} FROM {table} o "
            f"WHERE {keys.where('o.membership_id')} AND {where} ORDER BY o.membership_id, {order}"
        )
    named = ", ".join(f"{c} AS c{i}" for i, c in enumerate(columns))
    return (
        f"SELECT membership_id, {', '.join(f'c{i}' for i in range(len(columns)))} FROM ("
        f"SELECT o.membership_id, {named}, ROW_NUMBER() OVER (PARTITION BY o.membership_id ORDER BY {order}) AS rn "
        f"FROM {table} o WHERE {keys.where('o.membership_id')} AND {where}) ranked WHERE rn = 1"
    )


def _read_members(params: dict, as_of: datetime) -> dict[str, np.ndarray]:
    """Per membership enrolled by as_of (intention to treat: the group it was assigned, whatever it did): customer,
    enrolment time, the time it churned or was censored (`ended`), tier at enrolment (the first enrolment tier change,
    else its tier, shadow tier for control), the packed flags (bit 0 treatment, bit 1 churn event, bit 2 took the
    programme up: a concierge or event interaction between the enrolment and as_of; bits 3 and up the age at
    enrolment plus one, 0 unknown), the engagement score (-1 none) and scoring run (-1 none) at enrolment, and the
    region at enrolment (a 64-bit hash of its text on PostgreSQL).

    The effective outcome is the latest (by observed_at, by as_of) that no correction supersedes. Churned (event 1)
    at it if it is `churned`; without any outcome, churned at the customer's churned_at if that is by as_of;
    otherwise censored: at as_of if the customer is still active (or churned after as_of), else at the last
    observation.

    Subgroups are baseline only: the engagement band comes from the scoring run the enrolment used (the
    membership's source segment run), or, without one, the latest succeeded scoring run as of the enrolment;
    never from a run after it (churners stop interacting, treated members use the concierge)."""
    t = _tables()
    region = ("hashtextextended(m.region_at_enrolment, 0)", "i8") if _pg() else ("m.region_at_enrolment", "text")
    m = _read(
        f"""SELECT m.id, m.customer_id, m.enrolled_at,
                   CAST((CASE WHEN m."group" = 'treatment' THEN 1 ELSE 0 END)
                        + 2 * (COALESCE(m.age_at_enrolment, -1) + 1) AS integer),
                   COALESCE(m.tier_id, m.shadow_tier_id, -1), COALESCE(m.source_run_id, -1), {region[0]}
            FROM {t["membership"]} m WHERE m.programme_id = %(p)s AND m.enrolled_at <= %(as_of)s""",
        params,
        [
            ("id", "i8"),
            ("cid", "i8"),
            ("enrolled", "ts"),
            ("flags", "i4"),
            ("tier", "i8"),
            ("source", "i8"),
            ("region", region[1]),
        ],
    )
    n = len(m["id"])
    a = {"cid": m["cid"], "enrolled": m["enrolled"], "tier": m["tier"], "region": m["region"]}
    a["score"], a["srun"] = np.full(n, -1.0), np.full(n, -1, dtype=np.int64)
    if not n:
        a["ended"], a["flags"] = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        return a
    ids, customers = _Keys(m["id"], column="id"), _Keys(m["cid"], column="customer_id")
    # Tier at enrolment: the first enrolment tier change (a null target falls back to the membership's tier).
    tc = _read(
        _latest_per_membership(
            ids,
            table=t["tierchange"],
            columns=["COALESCE(o.to_tier_id, -1)"],
            where="o.reason = 'enrolment'",
            order="o.at, o.id",
        ),
        params,
        [("mid", "i8"), ("tier", "i8")],
    )
    at = ids.find(tc["mid"])
    use = (at >= 0) & (tc["tier"] >= 0)
    a["tier"] = a["tier"].copy()
    a["tier"][at[use]] = tc["tier"][use]
    # The effective outcome.
    superseding = f"SELECT 1 FROM {t['outcome']} s WHERE s.supersedes_id = o.id"
    eff = _read(
        _latest_per_membership(
            ids,
            table=t["outcome"],
            columns=["CASE WHEN o.outcome = 'churned' THEN 1 ELSE 0 END", "o.observed_at"],
            where=f"o.observed_at <= %(as_of)s AND NOT EXISTS ({superseding})",
            order="o.observed_at DESC, o.id DESC",
        ),
        params,
        [("mid", "i8"), ("churned", "i4"), ("at", "ts")],
    )
    at = ids.find(eff["mid"])
    known = at >= 0
    has_outcome, outcome_churned = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    observed = np.full(n, NONE_AT, dtype=np.int64)
    has_outcome[at[known]] = True
    outcome_churned[at[known]] = eff["churned"][known] == 1
    observed[at[known]] = eff["at"][known]
    # The customers that are not plainly active (every other member's customer is active, without a churn date).
    cu = _read(
        f"""SELECT c.id, {_ts("c.churned_at")}, CASE WHEN c.status = 'active' THEN 1 ELSE 0 END
            FROM {t["customer"]} c WHERE {customers.where("c.id")}
              AND (c.status <> 'active' OR c.churned_at IS NOT NULL)""",
        params,
        [("cid", "i8"), ("churned_at", "ts"), ("active", "i4")],
    )
    at = customers.find(cu["cid"])
    known = at >= 0
    churned_at, active = np.full(n, NONE_AT, dtype=np.int64), np.ones(n, dtype=bool)
    churned_at[at[known]] = cu["churned_at"][known]
    active[at[known]] = cu["active"][known] == 1
    as_of_us = _us(as_of)
    dated = churned_at != NONE_AT
    crm_churn = ~has_outcome & dated & (churned_at <= as_of_us)
    event = outcome_churned | crm_churn
    ended = np.where(
        outcome_churned,
        observed,
        np.where(crm_churn, churned_at, np.where(active | (dated & (churned_at > as_of_us)), as_of_us, observed)),
    )
    # Take-up: a programme interaction between the enrolment and as_of. The rows themselves (concierge and event
    # interactions are few), not a maximum per customer: the aggregate's hash costs more than sending them.
    placeholders = ", ".join(f"'{c}'" for c in TAKE_UP_CHANNELS)
    tu = _read(
        f"""SELECT i.customer_id, i.occurred_at FROM {t["interaction"]} i
            WHERE {customers.where("i.customer_id")} AND i.channel IN ({placeholders})
              AND i.occurred_at <= %(as_of)s""",
        params,
        [("cid", "i8"), ("at", "ts")],
    )
    at = customers.find(tu["cid"])
    hit = at >= 0
    hit[hit] = tu["at"][hit] >= m["enrolled"][at[hit]]
    took_up = np.zeros(n, dtype=bool)
    took_up[at[hit]] = True
    a["ended"] = ended
    a["flags"] = (
        (m["flags"] & 1) | (event.astype(np.int64) << 1) | (took_up.astype(np.int64) << 2) | ((m["flags"] >> 1) << 3)
    )
    _baseline_scores(a, m, customers, params)
    return a


def _baseline_scores(a: dict, m: dict, customers: _Keys, params: dict) -> None:
    """Each member's engagement score and scoring run at enrolment (`a["score"]`, `a["srun"]`): the scoring run of
    its source segment run, else the latest succeeded run as of the enrolment; a member without metrics in that run
    keeps -1."""
    sources = np.unique(m["source"][m["source"] >= 0])
    via_segment = dict(SegmentRun.objects.filter(pk__in=sources.tolist()).values_list("id", "scoring_run_id"))
    runs = list(
        ScoringRun.objects.filter(status=RunStatus.SUCCEEDED).order_by("as_of", "id").values_list("id", "as_of")
    )
    run = np.full(len(m["id"]), -1, dtype=np.int64)
    if runs:
        latest = np.searchsorted(np.array([_us(r[1]) for r in runs], dtype=np.int64), m["enrolled"], side="right") - 1
        run = np.where(latest >= 0, np.array([r[0] for r in runs], dtype=np.int64)[np.maximum(latest, 0)], -1)
    for source, scoring_run in via_segment.items():
        if scoring_run is not None:
            run[m["source"] == source] = scoring_run
    used = np.unique(run[run >= 0])
    if not len(used):
        return
    in_runs = ", ".join(str(int(r)) for r in used)
    cm = _read(
        f"""SELECT cm.scoring_run_id, cm.customer_id, CAST(cm.engagement_score AS double precision)
            FROM {CustomerMetrics._meta.db_table} cm
            WHERE cm.scoring_run_id IN ({in_runs}) AND {customers.where("cm.customer_id")}""",
        params,
        [("run", "i8"), ("cid", "i8"), ("score", "f8")],
    )
    at = customers.find(cm["cid"])
    mine = at >= 0
    mine[mine] = run[at[mine]] == cm["run"][mine]
    a["score"][at[mine]] = cm["score"][mine]
    a["srun"][at[mine]] = cm["run"][mine]


DAY_BITS = 16  # days after `since` in the packed revenue rows: 179 years


def _packed_revenue_sql(customers: _Keys) -> str:
    """`_revenue_sql` for members whose customer ids are dense, as (customer id - lowest) * 2^16 + days after `since`,
    and cents. Rows from 2^16 days after `since` on are left out: they lie after as_of, where no figure reads."""
    since = "CAST(%(since)s AS date)"
    return (
        f"SELECT (r.customer_id - {customers.lo}) * {1 << DAY_BITS} + (r.day - {since}), r.amount_minor "
        f"FROM {RevenueDayRollup._meta.db_table} r WHERE {customers.where('r.customer_id')} AND r.day >= {since} "
        f"AND r.day < {since} + {1 << DAY_BITS}"
    )


def _revenue_sql(customers: _Keys) -> str:
    """The revenue rollup rows (customer, day, cents) of the programme's members, from the earliest CUPED pre-period
    on (parameter `since`)."""
    day = "r.day" if _pg() else _day_number("r.day")
    return (
        f"SELECT r.customer_id, {day}, r.amount_minor FROM {RevenueDayRollup._meta.db_table} r "
        f"WHERE {customers.where('r.customer_id')} AND r.day >= %(since)s"
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
        # here and saves nothing; sorts and hashes must not spill to disk), and, when it is not nested in another,
        # every read sees one snapshot (repeatable read).
        params = _params(self.programme_id, self.as_of)
        outermost = not connection.in_atomic_block
        with transaction.atomic():
            if _pg():
                with connection.cursor() as cursor:
                    if outermost:
                        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                    cursor.execute("SET LOCAL jit = off; SET LOCAL work_mem = '256MB'")
            self._derive(_read_members(params, self.as_of))
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
        """Per member: `x` (revenue of the CUPED pre-period) and `y[i]` (the first horizons[i] days after
        enrolment), from its rollup rows, summed in cents (exact); per group (control, treatment) and month k after
        enrolment, `month_cents[group, k]`: the revenue in month k of the members old enough to have completed it
        (a sum over rows: no per-member array of months)."""
        n = len(self.age)
        self.x = np.zeros(n)
        self.y = np.zeros((len(self.horizons), n))
        self.month_cents = np.zeros((2, REVENUE_MONTHS))
        if not n:
            return
        since = datetime.fromtimestamp(int(self.pre_start.min()) * 86400, tz=UTC).date()
        params = {**params, "since": connection.ops.adapt_datefield_value(since)}
        customers = _Keys(self.a["cid"], column="customer_id")
        if _pg() and customers.dense:  # customer and day packed into one field: one field less per row to send
            rows = _read(_packed_revenue_sql(customers), params, [("key", "i8"), ("cents", "i8")])
            member = customers.table[rows["key"] >> DAY_BITS]
            day = (rows["key"] & ((1 << DAY_BITS) - 1)) + (since - date(1970, 1, 1)).days
        else:
            rows = _read(_revenue_sql(customers), params, [("cid", "i8"), ("day", "day"), ("cents", "i8")])
            member, day = customers.find(rows["cid"]), rows["day"]
        cents = rows["cents"].astype(np.float64)
        # Rows of a customer enrolled after the members were read (a nested transaction reads each statement's own
        # snapshot) belong to no member read here: left out. Rows before a member's own pre-period fall in no window.
        if (member < 0).any():
            keep = member >= 0
            member, day, cents = member[keep], day[keep], cents[keep]
        rd = day - self.enrolled_day[member]
        pre = (day < self.pre_end[member]) & (day >= self.pre_start[member])
        self.x = np.bincount(member, weights=np.where(pre, cents, 0.0), minlength=n) / 100.0
        for i, months in enumerate(self.horizons):
            inside = (rd >= 0) & (rd < horizon_days(months))
            self.y[i] = np.bincount(member, weights=np.where(inside, cents, 0.0), minlength=n) / 100.0
        # Month k after enrolment: k * DAYS_PER_MONTH <= rd < (k + 1) * DAYS_PER_MONTH (the division's rounding
        # corrected by the comparisons themselves), counted only for a member at least (k + 1) months old.
        year = (rd >= 0) & (rd < REVENUE_MONTHS * DAYS_PER_MONTH)
        member, rd, cents = member[year], rd[year], cents[year]
        k = np.floor(rd / DAYS_PER_MONTH)
        k -= k * DAYS_PER_MONTH > rd
        k += (k + 1) * DAYS_PER_MONTH <= rd
        inside = (k >= 0) & (k < REVENUE_MONTHS) & (self.age[member] >= (k + 1) * DAYS_PER_MONTH)
        cell = self.treated[member[inside]] * REVENUE_MONTHS + k[inside].astype(np.int64)
        self.month_cents = np.bincount(cell, weights=cents[inside], minlength=2 * REVENUE_MONTHS).reshape(
            2, REVENUE_MONTHS
        )

    def revenue(self) -> tuple[list[tuple[str, int, float, int]], list[RevenueMoments], datetime | None]:
        """Revenue by month: (group, month since enrolment k, revenue in month k, members enrolled at least k+1
        months ago); only members old enough to have completed month k count, in numerator and denominator
        alike. The CUPED moments per group and horizon (`RevenueMoments`). When the latest member was enrolled."""
        by_month, moments = [], []
        # Each member's bucket: how many of the ages that matter (the end of month k, each horizon) it has reached;
        # the members at least a given age old are those in the buckets from that age's on. Sums per group and
        # bucket (one count each), then added from the oldest bucket down.
        ages = np.array(
            sorted({*((k + 1) * DAYS_PER_MONTH for k in range(REVENUE_MONTHS)), *map(horizon_days, self.horizons)})
        )
        width = len(ages) + 1
        bucket = self.treated * width + np.searchsorted(ages, self.age, side="right")

        def per_bucket(weights=None) -> np.ndarray:
            counts = np.bincount(bucket, weights=weights, minlength=2 * width).reshape(2, width)
            return np.cumsum(counts[:, ::-1], axis=1)[:, ::-1]  # [group, j]: members in buckets j and up

        def reached(days: float) -> int:
            return int(np.searchsorted(ages, days)) + 1  # the first bucket whose members are at least `days` old

        members = per_bucket()
        x_sum, xx = per_bucket(self.x), per_bucket(self.x * self.x)
        y_sums = [(per_bucket(y), per_bucket(y * y), per_bucket(self.x * y)) for y in self.y]
        for group, treated in (("control", 0), ("treatment", 1)):
            if not members[treated, 0]:
                continue
            for k in range(REVENUE_MONTHS):
                j = reached((k + 1) * DAYS_PER_MONTH)
                if members[treated, j]:
                    by_month.append((group, k, float(self.month_cents[treated, k] / 100.0), int(members[treated, j])))
            for i, horizon in enumerate(self.horizons):
                j = reached(horizon_days(horizon))
                y, yy, xy = y_sums[i]
                moments.append(
                    RevenueMoments(
                        group,
                        horizon,
                        int(members[treated, j]),
                        float(x_sum[treated, j]),
                        float(y[treated, j]),
                        float(xx[treated, j]),
                        float(yy[treated, j]),
                        float(xy[treated, j]),
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
    among them: each column is replaced by its rank among its own values, and the ranks are combined into one
    integer, so one 1-d operation does what a sort of rows would. A column whose values span a small range is
    ranked by its offset from its minimum and the combined integers, when their range is small, are counted
    (no sort at all); otherwise they are sorted."""
    n = len(columns[0])
    combined = np.zeros(n, dtype=np.int64)
    values, span = [], 1
    for column in columns:
        low, high = (int(column.min()), int(column.max())) if n else (0, 0)
        if high - low < 4 * n + 64:
            distinct, rank = np.arange(low, high + 1), column - low
        else:
            distinct, rank = np.unique(column, return_inverse=True)
        values.append(distinct)
        span *= len(distinct)
        combined = combined * len(distinct) + rank.reshape(-1)
    if span <= 4 * n + 4096:
        present = np.bincount(combined, minlength=span) > 0
        keys = np.flatnonzero(present)
        inverse = (np.cumsum(present) - 1)[combined]
    else:
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
