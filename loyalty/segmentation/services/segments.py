"""Segments: save validated rules, run them set-based (members written with INSERT ... SELECT), preview,
diff two runs, explain one customer."""

from __future__ import annotations

import json
import time
from typing import Any

from django.db import connection, transaction
from django.db.models import Expression, F, JSONField
from django.db.models.expressions import RawSQL
from django.utils import timezone

from accounts.models import User
from core import outbox, runs
from core.errors import BusinessRuleError, Conflict, NotFound
from core.sql import is_postgres, tune_transaction
from loyalty.customers.models import Customer
from loyalty.segmentation.models import CustomerMetrics, RunStatus, ScoringRun, Segment, SegmentMember, SegmentRun
from loyalty.segmentation.services.segment_rules import (
    ASCENDING,
    METRIC_FIELDS,
    Compiled,
    Compiler,
    leaves,
    rule_validate,
)

METRICS = CustomerMetrics._meta.db_table
CUSTOMER = Customer._meta.db_table
MEMBERS = SegmentMember._meta.db_table
SAMPLE_SIZE = 20
DIFF_LIST_LIMIT = 100


# ------------------------------------------------------------------------------------------ segments


@transaction.atomic
def segment_create(
    *,
    name: str,
    rule: dict | None,
    top_n: int | None = None,
    top_by: str = "",
    tie_break: str = "",
    description: str = "",
    created_by: User | None = None,
) -> Segment:
    rule_validate(rule=rule, top_n=top_n, top_by=top_by, tie_break=tie_break)
    if Segment.objects.filter(name=name).exists():
        raise Conflict("A segment with this name exists.", code="segment_name_taken", fields={"name": [name]})
    return Segment.objects.create(
        name=name,
        description=description,
        rule=rule or {},
        top_n=top_n,
        top_by=top_by,
        tie_break=tie_break,
        created_by=created_by,
    )


@transaction.atomic
def segment_update(*, segment: Segment, **changes: Any) -> Segment:
    """Change a segment; runs keep the rule they ran with (rule_snapshot)."""
    data = {f: getattr(segment, f) for f in ("name", "description", "rule", "top_n", "top_by", "tie_break")}
    data.update(changes)
    rule_validate(rule=data["rule"], top_n=data["top_n"], top_by=data["top_by"], tie_break=data["tie_break"])
    if Segment.objects.filter(name=data["name"]).exclude(pk=segment.pk).exists():
        raise Conflict("A segment with this name exists.", code="segment_name_taken", fields={"name": [data["name"]]})
    for field, value in data.items():
        setattr(segment, field, value if field != "rule" else (value or {}))
    segment.save()
    return segment


def _snapshot(segment: Segment) -> dict:
    return {
        "rule": segment.rule or {},
        "top_n": segment.top_n,
        "top_by": segment.top_by,
        "tie_break": segment.tie_break,
    }


def _scoring_run_for(scoring_run: ScoringRun | None) -> ScoringRun:
    if scoring_run is None:
        scoring_run = ScoringRun.objects.filter(status=RunStatus.SUCCEEDED).order_by("-as_of", "-id").first()
        if scoring_run is None:
            raise BusinessRuleError("There is no finished scoring run yet.", code="no_scoring_run")
    elif scoring_run.status != RunStatus.SUCCEEDED:
        raise BusinessRuleError("The scoring run has not finished successfully.", code="scoring_run_not_succeeded")
    return scoring_run


# ------------------------------------------------------------------------------------------- SQL


# The metrics that can be NULL (a customer without any interaction); the others rank without a NULL key.
NULLABLE = {"days_since_last"}


def _order_by(snapshot: dict) -> str:
    """Rank order: top_by, then tie_break (NULLs last), then customer id."""
    keys = []
    for field in (snapshot.get("top_by"), snapshot.get("tie_break")):
        if field:
            column = METRIC_FIELDS[field][1]
            direction = "ASC" if field in ASCENDING else "DESC"
            if field in NULLABLE:
                keys.append(f"CASE WHEN {column} IS NULL THEN 1 ELSE 0 END")
            keys.append(f"{column} {direction}")
    if not keys:
        keys.append("m.revenue_minor DESC")
    return ", ".join([*keys, "m.customer_id ASC"])


def _value_pairs(snapshot: dict) -> list[tuple[str, str]]:
    """(key, SQL expression) of the values that qualify a member, in the order of its JSON object: revenue and
    engagement, every field the rule reads (in the order the compiler meets them), the top N keys. Attributes
    as stored on the customer (age and tenure as birth year and join date)."""
    fields = [leaf["field"] for _path, leaf in leaves(snapshot.get("rule") or {})]
    names = list(dict.fromkeys(["revenue_minor", "engagement_score", *fields]))
    names += [f for f in (snapshot.get("top_by"), snapshot.get("tie_break")) if f and f not in names]
    pairs: list[tuple[str, str]] = []
    for name in names:
        if name in METRIC_FIELDS and name != "revenue":
            pairs.append((name, METRIC_FIELDS[name][1]))
        elif name == "revenue":
            continue  # revenue_minor is always there
        elif name in ("region", "status"):
            pairs.append((name, f"c.{name}"))
        elif name in ("age", "age_band"):
            pairs.append(("birth_year", "c.birth_year"))
        elif name == "tenure_days":
            pairs.append(("joined_at", "c.joined_at"))
    return list(dict(pairs).items())


def _in_metrics(key: str) -> bool:
    """Whether a value key is a column of the scoring run's CustomerMetrics (immutable for the run); customer
    attributes and influence change after the run and are stored with the member."""
    return key in METRIC_FIELDS and key not in ("revenue", "influence")


def _json_object(pairs: list[tuple[str, str]]) -> str:
    args = ", ".join(f"'{key}', {expr}" for key, expr in pairs)
    return f"jsonb_build_object({args})" if is_postgres() else f"json_object({args})"


def _values_sql(snapshot: dict) -> str:
    """Every value that qualifies a member (preview)."""
    return _json_object(_value_pairs(snapshot))


def _stored_values_sql(snapshot: dict) -> str:
    """What a compact run stores per member: the values that its scoring run's metrics do not hold."""
    pairs = [(key, expr) for key, expr in _value_pairs(snapshot) if not _in_metrics(key)]
    if pairs:
        return _json_object(pairs)
    return "CAST('{}' AS jsonb)" if is_postgres() else "'{}'"


def segment_member_values(run: SegmentRun) -> Expression:
    """The values that qualified each member of `run`, for `SegmentMember.objects.filter(run=run)` (top-level
    querysets only: the SQL names the members table). A compact run's member values are built again from the
    scoring run's metrics with the expression that built them at run time, in the same key order, with the
    stored values in their places: the same JSON text as a run that stored them all."""
    if not run.compact_values:
        return F("stored_values")
    stored = f"{MEMBERS}.{connection.ops.quote_name('values')}"
    pairs = []
    for key, expr in _value_pairs(run.rule_snapshot):
        if _in_metrics(key):
            pairs.append((key, expr))
        elif is_postgres():
            pairs.append((key, f"{stored} -> '{key}'"))
        else:
            pairs.append((key, f"json_extract({stored}, '$.{key}')"))
    # Keys and expressions are the fixed names and columns of _value_pairs; the run id is a parameter.
    return RawSQL(  # noqa: S611
        f"(SELECT {_json_object(pairs)} FROM {METRICS} m "
        f"WHERE m.scoring_run_id = %s AND m.customer_id = {MEMBERS}.customer_id)",
        [run.scoring_run_id],
        output_field=JSONField(),
    )


def _source(compiled: Compiled, snapshot: dict) -> str:
    """Metrics of the run, joined with the customer only when the rule reads customer attributes."""
    join = f" JOIN {CUSTOMER} c ON c.id = m.customer_id" if compiled.needs_customer else ""
    return f"{METRICS} m{join}"


def _ranked_select(
    snapshot: dict, compiled: Compiled, scoring_run_id: int, *, limit: int | None, values: str | None = None
) -> tuple[str, list]:
    """SELECT customer_id, rank, values of the customers in the segment, in rank order (`values`: the JSON
    expression, by default every value)."""
    top_n = snapshot.get("top_n")
    bound = min(x for x in (top_n, limit) if x is not None) if (top_n or limit) else None
    sql = (
        f"SELECT m.customer_id, ROW_NUMBER() OVER (ORDER BY {_order_by(snapshot)}) AS rk, "
        f"{values or _values_sql(snapshot)} AS vals FROM {_source(compiled, snapshot)} "
        f"WHERE m.scoring_run_id = %s AND {compiled.sql} ORDER BY {_order_by(snapshot)}"
    )
    if bound is not None:
        sql += f" LIMIT {int(bound)}"
    return sql, [scoring_run_id, *compiled.params]


def _count(cursor, compiled: Compiled, snapshot: dict, scoring_run_id: int) -> int:
    cursor.execute(
        f"SELECT COUNT(*) FROM {_source(compiled, snapshot)} WHERE m.scoring_run_id = %s AND {compiled.sql}",
        [scoring_run_id, *compiled.params],
    )
    return cursor.fetchone()[0]


def _load(value: Any) -> dict:
    return json.loads(value) if isinstance(value, str) else (value or {})


# ------------------------------------------------------------------------------------------ preview


def segment_preview(
    *, rule: dict | None, top_n: int | None, top_by: str, tie_break: str, scoring_run: ScoringRun | None
) -> dict:
    """Count and a sample of a (saved or draft) segment on a scoring run; persists nothing."""
    rule_validate(rule=rule, top_n=top_n, top_by=top_by, tie_break=tie_break)
    scoring_run = _scoring_run_for(scoring_run)
    snapshot = {"rule": rule or {}, "top_n": top_n, "top_by": top_by, "tie_break": tie_break}
    compiled = Compiler(scoring_run.as_of).compile(snapshot["rule"])
    with connection.cursor() as cursor:
        candidates = _count(cursor, compiled, snapshot, scoring_run.pk)
        sql, params = _ranked_select(snapshot, compiled, scoring_run.pk, limit=SAMPLE_SIZE)
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    customers = Customer.objects.in_bulk([r[0] for r in rows])
    return {
        "scoring_run_id": scoring_run.pk,
        "candidates_count": candidates,
        "member_count": min(candidates, top_n) if top_n else candidates,
        "sample": [
            {
                "customer_id": cid,
                "external_id": customers[cid].external_id,
                "name": customers[cid].name,
                "rank": rank,
                "values": _load(vals),
            }
            for cid, rank, vals in rows
        ],
    }


# --------------------------------------------------------------------------------------------- runs


@transaction.atomic
def segment_run_create(
    *, segment: Segment, scoring_run: ScoringRun | None = None, created_by: User | None = None, enqueue=True
) -> SegmentRun:
    scoring_run = _scoring_run_for(scoring_run)
    run = SegmentRun.objects.create(
        segment=segment, scoring_run=scoring_run, rule_snapshot=_snapshot(segment), created_by=created_by
    )
    if enqueue:
        outbox.enqueue("loyalty.tasks.segment_run_task", run.pk)
    return run


def _members_partition(run_id: int) -> str:
    return f"{MEMBERS}_r{int(run_id)}"


def _members_insert(cursor, run: SegmentRun, compiled: Compiled) -> int:
    """Write the run's members, compact: with only the values that the scoring run's metrics do not hold
    (`segment_member_values` reads the rest back). On PostgreSQL into a table of the run's own without any
    index; its key and the (run, rank) index are then built by sorting and the table attached as the run's
    partition (half the time of inserting into the indexed table). On SQLite into the table."""
    sql, params = _ranked_select(
        run.rule_snapshot,
        compiled,
        run.scoring_run_id,
        limit=None,
        values=_stored_values_sql(run.rule_snapshot),
    )
    if is_postgres():
        # One members step at a time (ATTACH locks the parent, then the default partition): see scoring.py.
        cursor.execute(f"LOCK TABLE {MEMBERS} IN SHARE UPDATE EXCLUSIVE MODE")
    cursor.execute(f"DELETE FROM {MEMBERS} WHERE run_id = %s", [run.pk])  # ORM-written rows, if any
    target = MEMBERS
    if is_postgres():
        target = _members_partition(run.pk)
        cursor.execute(f"DROP TABLE IF EXISTS {target}")  # only ever a leftover: members commit with their run
        cursor.execute(
            f"CREATE TABLE {target} (LIKE {MEMBERS} INCLUDING DEFAULTS INCLUDING CONSTRAINTS, "
            f"CHECK (run_id = {int(run.pk)}))"  # lets ATTACH skip its scan
        )
    cursor.execute(
        f"INSERT INTO {target} (run_id, customer_id, rank, {connection.ops.quote_name('values')}) "
        f"SELECT {int(run.pk)}, customer_id, rk, vals FROM ({sql}) ranked",
        params,
    )
    members = cursor.rowcount
    if is_postgres():
        cursor.execute(f"ALTER TABLE {target} ADD PRIMARY KEY (run_id, customer_id)")
        cursor.execute(f"CREATE INDEX {target}_rank ON {target} (run_id, rank)")
        cursor.execute(f"ALTER TABLE {MEMBERS} ATTACH PARTITION {target} FOR VALUES IN ({int(run.pk)})")
    return members


def segment_runs_delete(*, run_ids: list[int]) -> None:
    """Delete segment runs with their members (on PostgreSQL their partitions are dropped). The caller decides
    that nothing needs them any more (retention, the bench)."""
    if not run_ids:
        return
    with transaction.atomic(), connection.cursor() as cursor:
        if is_postgres():
            for run_id in run_ids:
                cursor.execute(f"DROP TABLE IF EXISTS {_members_partition(run_id)}")
        SegmentRun.objects.filter(pk__in=run_ids).delete()  # cascades to ORM-written members


def scoring_runs_delete(*, run_ids: list[int]) -> None:
    """Delete scoring runs with everything they stored: metrics (partitions dropped on PostgreSQL), their
    segment runs and those runs' members. The caller decides that nothing else needs them (retention). Here,
    not in scoring.py, because segment runs depend on scoring runs, not the other way round."""
    from loyalty.segmentation.services.scoring import scoring_run_delete

    if not run_ids:
        return
    with transaction.atomic():
        segment_runs_delete(
            run_ids=list(SegmentRun.objects.filter(scoring_run_id__in=run_ids).values_list("id", flat=True))
        )
        for run in ScoringRun.objects.filter(pk__in=run_ids):
            scoring_run_delete(run=run)


def segment_run_execute(*, run_id: int) -> SegmentRun:
    """Execute a segment run in one transaction: either every member is written or none (a failure is
    recorded on the run). Claimed by a conditional UPDATE (pending -> running): a duplicate delivery does
    nothing; a run whose worker died is requeued by the reconciler (core.runs)."""
    run = SegmentRun.objects.select_related("scoring_run").get(pk=run_id)
    if not runs.run_claim(SegmentRun, run.pk, progress=10):
        return run
    try:
        with runs.heartbeat(SegmentRun, run.pk), transaction.atomic(), connection.cursor() as cursor:
            tune_transaction(cursor)
            started = time.perf_counter()
            compiled = Compiler(run.scoring_run.as_of).compile(run.rule_snapshot.get("rule"))
            members = _members_insert(cursor, run, compiled)
            inserted = time.perf_counter()
            top_n = run.rule_snapshot.get("top_n")
            # Fewer members than the top N (or no top N): every candidate is a member, no second scan to count.
            full = top_n is not None and members >= top_n
            candidates = _count(cursor, compiled, run.rule_snapshot, run.scoring_run_id) if full else members
            SegmentRun.objects.filter(pk=run.pk).update(
                status=RunStatus.SUCCEEDED,
                progress=100,
                member_count=members,
                candidates_count=candidates,
                compact_values=True,
                timings={
                    "members": round(inserted - started, 3),
                    "count": round(time.perf_counter() - inserted, 3),
                },
                heartbeat_at=timezone.now(),
                finished_at=timezone.now(),
            )
    except Exception as exc:
        SegmentRun.objects.filter(pk=run.pk).update(
            status=RunStatus.FAILED, error=f"{type(exc).__name__}: {exc}"[:2000], finished_at=timezone.now()
        )
    run.refresh_from_db()
    return run


def segment_run_retry(*, run: SegmentRun) -> SegmentRun:
    """A failed segment run starts again (409 `run_not_failed` otherwise)."""
    return runs.run_retry(
        SegmentRun, run.pk, task_name="loyalty.tasks.segment_run_task", member_count=0, candidates_count=0
    )


def segment_runs_reconcile() -> dict[str, list[int]]:
    """Requeue or fail segment runs that never started or whose worker died (beat, core.runs)."""
    return runs.runs_reconcile(SegmentRun, task_name="loyalty.tasks.segment_run_task")


def _succeeded(run: SegmentRun) -> None:
    if run.status != RunStatus.SUCCEEDED:
        raise BusinessRuleError("The segment run has not finished successfully.", code="segment_run_not_succeeded")


def segment_run_diff(*, run: SegmentRun, against: SegmentRun) -> dict:
    """Customers that entered (in `run`, not in `against`), left and stayed."""
    _succeeded(run)
    _succeeded(against)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT COUNT(*) FROM {MEMBERS} a WHERE a.run_id = %s AND EXISTS "
            f"(SELECT 1 FROM {MEMBERS} b WHERE b.run_id = %s AND b.customer_id = a.customer_id)",
            [run.pk, against.pk],
        )
        stayed = cursor.fetchone()[0]
        lists = {}
        for name, new, old in (("entered", run.pk, against.pk), ("left", against.pk, run.pk)):
            cursor.execute(
                f"SELECT a.customer_id FROM {MEMBERS} a WHERE a.run_id = %s AND NOT EXISTS "
                f"(SELECT 1 FROM {MEMBERS} b WHERE b.run_id = %s AND b.customer_id = a.customer_id) "
                f"ORDER BY a.rank LIMIT {DIFF_LIST_LIMIT}",
                [new, old],
            )
            lists[name] = [row[0] for row in cursor.fetchall()]
    return {
        "run_id": run.pk,
        "against_run_id": against.pk,
        "entered_count": run.member_count - stayed,
        "left_count": against.member_count - stayed,
        "stayed_count": stayed,
        "entered": lists["entered"],
        "left": lists["left"],
    }


def segment_run_explain(*, run: SegmentRun, customer_id: int) -> dict:
    """Why a customer is in or out of a run: every comparison of the rule with the customer's actual value,
    evaluated by the same compiled SQL, and for top N the rank or the cutoff."""
    _succeeded(run)
    customer = Customer.objects.filter(pk=customer_id).first()
    if customer is None:
        raise NotFound("No such customer.", code="customer_not_found")
    snapshot = run.rule_snapshot
    rule = snapshot.get("rule") or {}
    compiler = Compiler(run.scoring_run.as_of)
    checks, params = [], []
    for _path, leaf in leaves(rule):
        sql, leaf_params = compiler.leaf(leaf["field"], leaf["op"], leaf["value"])
        checks.append(f"CASE WHEN {sql} THEN 1 WHEN NOT ({sql}) THEN 0 END")
        params += leaf_params + leaf_params
    compiled = compiler.compile(rule)
    metric_cols = [f for f in METRIC_FIELDS if f != "revenue"]
    select = [f"CASE WHEN {compiled.sql} THEN 1 ELSE 0 END", *checks, *(METRIC_FIELDS[f][1] for f in metric_cols)]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(select)} FROM {METRICS} m JOIN {CUSTOMER} c ON c.id = m.customer_id "
            "WHERE m.scoring_run_id = %s AND m.customer_id = %s",
            [*compiled.params, *params, run.scoring_run_id, customer_id],
        )
        row = cursor.fetchone()
    member = SegmentMember.objects.filter(run=run, customer_id=customer_id).first()
    result: dict[str, Any] = {
        "run_id": run.pk,
        "customer_id": customer_id,
        "in_segment": member is not None,
        "rank": member.rank if member else None,
        "scored": row is not None,
        "matches_rule": bool(row and row[0]),
        "top_n": snapshot.get("top_n"),
        "top_by": snapshot.get("top_by") or "",
        "metrics": {},
        "conditions": [],
        "reason": "",
    }
    if row is None:
        result["reason"] = "The customer was not scored in this run's scoring run."
        return result
    metrics = dict(zip(metric_cols, row[1 + len(checks) :], strict=True))
    result["metrics"] = metrics
    as_of = run.scoring_run.as_of
    actual_attrs = {
        "region": customer.region,
        "status": customer.status,
        "age": (as_of.year - customer.birth_year) if customer.birth_year else None,
        "age_band": _age_band(as_of.year - customer.birth_year) if customer.birth_year else None,
        "tenure_days": (as_of - customer.joined_at).days,
    }
    for (path, leaf), passed in zip(leaves(rule), row[1 : 1 + len(checks)], strict=True):
        field = leaf["field"]
        actual = (
            metrics.get(field)
            if field in metrics
            else (metrics["revenue_minor"] / 100 if field == "revenue" else actual_attrs.get(field))
        )
        result["conditions"].append(
            {
                "path": path,
                "field": field,
                "op": leaf["op"],
                "value": leaf["value"],
                "actual": actual,
                "passed": passed == 1,
            }
        )
    if member is not None:
        result["reason"] = "Matches the rule" + (
            f" and ranks {member.rank} of the top {snapshot['top_n']} by {snapshot['top_by']}."
            if snapshot.get("top_n")
            else "."
        )
    elif not result["matches_rule"]:
        failed = [c["path"] for c in result["conditions"] if not c["passed"]]
        result["reason"] = "Does not match the rule; failed conditions: " + ", ".join(failed) + "."
    else:
        last = (
            SegmentMember.objects.filter(run=run)
            .annotate(values=segment_member_values(run))
            .order_by("-rank")
            .values_list("values", flat=True)
            .first()
        )
        cutoff = last.get(snapshot["top_by"]) if last else None
        result["reason"] = (
            f"Matches the rule but ranks below the top {snapshot['top_n']} by {snapshot['top_by']} "
            f"(value {metrics.get(snapshot['top_by'])}; the last member has {cutoff})."
        )
    return result


def _age_band(age: int) -> str:
    from loyalty.segmentation.services.segment_rules import AGE_BANDS

    return next((band for band, (low, high) in AGE_BANDS.items() if low <= age <= high), "")


# -------------------------------------------------------------------------------------- scheduling


def scheduled_runs_execute(*, segment_ids: list[int] | None = None) -> dict:
    """Score with the newest default model as of now, then run the segments on that run (all by default)."""
    from loyalty.segmentation.services.scoring import scoring_model_default, scoring_run_create, scoring_run_execute

    model = scoring_model_default()
    run = scoring_run_execute(run_id=scoring_run_create(scoring_model=model, enqueue=False).pk)
    result: dict[str, Any] = {"scoring_run": run.pk, "status": run.status, "segment_runs": {}}
    if run.status != RunStatus.SUCCEEDED:
        return result
    segments = Segment.objects.all() if segment_ids is None else Segment.objects.filter(pk__in=segment_ids)
    for segment in segments:
        segment_run = segment_run_execute(run_id=segment_run_create(segment=segment, scoring_run=run, enqueue=False).pk)
        result["segment_runs"][segment.name] = {"id": segment_run.pk, "status": segment_run.status}
    return result
