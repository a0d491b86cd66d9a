"""Enrolment of a segment run into a programme, set-based, with a reproducible randomised holdout."""

from __future__ import annotations

import logging
import time
from datetime import datetime

from django.db import connection, transaction
from django.utils import timezone

from accounts.models import User
from core import outbox, runs
from core.errors import BusinessRuleError
from loyalty.customers.models import Customer
from loyalty.programmes.models import Enrolment, Membership, Programme, TierChange
from loyalty.programmes.selectors.programmes import programme_group_counts
from loyalty.programmes.services.assignment import (
    assignment_bucket_sql,
    holdout_cutoff,
    retention_mde,
    retention_mde_for_holdout,
    sample_ratio_check,
)
from loyalty.programmes.services.member_accounts import member_accounts_link_enrolled
from loyalty.programmes.services.programmes import programme_tiers_or_error
from loyalty.programmes.services.tier_sql import qualifying_tier_case, table
from loyalty.segmentation.models import CustomerMetrics, RunStatus, SegmentMember, SegmentRun

logger = logging.getLogger("premier.enrolment")

MDE_TABLE_HOLDOUTS = (5, 10, 15, 20, 30, 50)


def _enrolment_allowed(*, programme: Programme, segment_run: SegmentRun) -> None:
    """What enrolling needs (the preview refuses the same): an active programme with tiers, a succeeded run."""
    if programme.status != Programme.Status.ACTIVE:
        raise BusinessRuleError("The programme is closed.", code="programme_closed")
    if segment_run.status != RunStatus.SUCCEEDED:
        raise BusinessRuleError("Only a succeeded segment run can be enrolled.", code="segment_run_not_succeeded")
    programme_tiers_or_error(programme)


@transaction.atomic
def enrolment_start(
    *, programme: Programme, segment_run: SegmentRun, actor: User | None = None
) -> tuple[Enrolment, bool]:
    """Create the enrolment of `segment_run` into `programme` and queue it; (enrolment, created).

    Enrolling the same run again returns the existing enrolment and changes nothing (a failed one is queued
    again)."""
    programme = Programme.objects.select_for_update().get(pk=programme.pk)
    _enrolment_allowed(programme=programme, segment_run=segment_run)
    enrolment, created = Enrolment.objects.get_or_create(
        programme=programme, segment_run=segment_run, defaults={"created_by": actor}
    )
    if created or enrolment.status == RunStatus.FAILED:
        outbox.enqueue("loyalty.tasks.run_enrolment", enrolment.pk)
    return enrolment, created


def programme_power_table(*, programme: Programme, customers: int) -> dict:
    """The smallest retention difference (points) detectable at 95% confidence and 80% power when `customers`
    are split at several holdout shares and at the programme's own."""
    shares = sorted({*(float(h) for h in MDE_TABLE_HOLDOUTS), float(programme.holdout_percent)})
    rows = []
    for share in shares:
        control = round(customers * share / 100)
        mde = retention_mde_for_holdout(
            customers=customers, holdout_percent=share, baseline=programme.expected_retention
        )
        rows.append(
            {
                "holdout_percent": share,
                "treatment": customers - control,
                "control": control,
                "min_detectable_retention_effect_points": _points(mde),
            }
        )
    return {"customers": customers, "expected_retention": programme.expected_retention, "rows": rows}


def enrolment_preview(*, programme: Programme, segment_run: SegmentRun) -> dict:
    """What enrolling `segment_run` would do, before anything is written: who would be enrolled (active run
    members not yet in the programme), the expected treatment/control split at the programme's holdout, and
    the detectable retention effect with and without the programme's current members. Refuses what
    `enrolment_start` refuses."""
    _enrolment_allowed(programme=programme, segment_run=segment_run)
    members = SegmentMember.objects.filter(run=segment_run)
    run_members = members.count()
    eligible = members.filter(customer__status=Customer.Status.ACTIVE).exclude(
        customer__memberships__programme=programme
    )
    new = eligible.count()
    live = programme_group_counts(programme=programme)
    holdout = float(programme.holdout_percent)
    control = round(new * holdout / 100)
    treatment = new - control
    live_t, live_c = live.get(Membership.Group.TREATMENT, 0), live.get(Membership.Group.CONTROL, 0)
    baseline = programme.expected_retention
    return {
        "run_members": run_members,
        "already_members": members.filter(customer__memberships__programme=programme).count(),
        "inactive": members.exclude(customer__status=Customer.Status.ACTIVE).count(),
        "new": new,
        "holdout_percent": holdout,
        "expected_treatment": treatment,
        "expected_control": control,
        "this_enrolment_mde_points": _points(retention_mde(treatment=treatment, control=control, baseline=baseline)),
        "programme_treatment_after": live_t + treatment,
        "programme_control_after": live_c + control,
        "programme_mde_points_after": _points(
            retention_mde(treatment=live_t + treatment, control=live_c + control, baseline=baseline)
        ),
        "power": programme_power_table(programme=programme, customers=max(new, 2)),
    }


def enrolment_run(*, enrolment_id: int, now: datetime | None = None) -> Enrolment | None:
    """Run a queued enrolment (the Celery task calls this). Safe to run twice: only the first claim works."""
    now = now or timezone.now()
    # Claimed by a conditional UPDATE: a duplicate delivery, or one of a running enrolment, does nothing (one
    # whose worker died is requeued by the reconciler, core.runs).
    claimed = runs.run_claim(
        Enrolment, enrolment_id, progress=5, statuses=(RunStatus.PENDING, RunStatus.FAILED), error=""
    )
    if not claimed:
        return None
    try:
        with runs.heartbeat(Enrolment, enrolment_id):
            enrolled = _enrol(enrolment_id=enrolment_id, now=now)
    except Exception as exc:
        logger.exception("Enrolment %s failed", enrolment_id)
        Enrolment.objects.filter(pk=enrolment_id).update(
            status=RunStatus.FAILED, error=f"{type(exc).__name__}: {exc}"[:2000], finished_at=timezone.now()
        )
        raise
    if enrolled:
        # After the enrolment committed (a failing email task must not mark the enrolment failed).
        outbox.enqueue("loyalty.tasks.send_enrolment_invitations", enrolment_id)
    return Enrolment.objects.get(pk=enrolment_id)


@transaction.atomic
def _enrol(*, enrolment_id: int, now: datetime) -> int:
    timings: dict[str, float] = {}
    started = time.perf_counter()
    enrolment = Enrolment.objects.select_related("segment_run").get(pk=enrolment_id)
    # One enrolment or evaluation per programme at a time.
    programme = Programme.objects.select_for_update().get(pk=enrolment.programme_id)
    tiers = programme_tiers_or_error(programme)
    run = enrolment.segment_run
    ops = connection.ops
    now_db = ops.adapt_datetimefield_value(now)
    qn = ops.quote_name

    m_t, sm_t, c_t, cm_t, tc_t = (
        table(Membership),
        table(SegmentMember),
        table(Customer),
        table(CustomerMetrics),
        table(TierChange),
    )
    metric = f"cm.{qn(programme.qualifying_metric)}"
    tier_case, tier_params = qualifying_tier_case(metric, tiers, output="id")
    # Baseline snapshot for the impact report: region and age as they are at enrolment (the year is an int
    # computed here, inlined as a literal).
    year = int(now.year)
    source = (
        f"SELECT sm.customer_id AS customer_id, {tier_case} AS tier_id, c.region AS region, "
        f"CASE WHEN c.birth_year IS NULL OR c.birth_year > {year} THEN NULL ELSE {year} - c.birth_year END AS age "
        f"FROM {sm_t} sm "
        f"JOIN {c_t} c ON c.id = sm.customer_id "
        f"LEFT JOIN {cm_t} cm ON cm.customer_id = sm.customer_id AND cm.scoring_run_id = %s "
        f"WHERE sm.run_id = %s AND c.status = %s "
        f"AND NOT EXISTS (SELECT 1 FROM {m_t} m WHERE m.programme_id = %s AND m.customer_id = sm.customer_id)"
    )
    source_params = [*tier_params, run.scoring_run_id, run.pk, Customer.Status.ACTIVE, programme.pk]
    bucketed, hash_params = assignment_bucket_sql(source, ["tier_id", "region", "age"], programme.seed)
    cutoff = holdout_cutoff(programme.holdout_percent)
    insert = (
        f"INSERT INTO {m_t} (programme_id, customer_id, {qn('group')}, tier_id, shadow_tier_id, status, "
        f"enrolled_at, source_run_id, assignment_seed, assignment_bucket, override_reason, region_at_enrolment, "
        f"age_at_enrolment) "
        f"SELECT %s, customer_id, "
        f"CASE WHEN bucket_int < %s THEN 'control' ELSE 'treatment' END, "
        f"CASE WHEN bucket_int < %s THEN NULL ELSE tier_id END, "
        f"CASE WHEN bucket_int < %s THEN tier_id ELSE NULL END, "
        f"CASE WHEN bucket_int < %s THEN 'holdout' ELSE 'active' END, "
        f"%s, %s, %s, bucket_int / 10000.0, '', region, age FROM ({bucketed}) b"
    )
    with connection.cursor() as cursor:
        skipped = SegmentMember.objects.filter(run=run, customer__memberships__programme=programme).count()
        cursor.execute(
            insert,
            [programme.pk, cutoff, cutoff, cutoff, cutoff]
            + [now_db, run.pk, programme.seed]
            + source_params
            + hash_params,
        )
        enrolled = cursor.rowcount
        if connection.vendor == "postgresql":
            cursor.execute(f"ANALYZE {m_t}")  # fresh statistics for the statements below
        timings["memberships"] = round(time.perf_counter() - started, 3)
        runs.run_progress(Enrolment, enrolment_id, 60)

        mark = time.perf_counter()
        new_treatment = (
            f"FROM {m_t} m WHERE m.programme_id = %s AND m.source_run_id = %s AND m.{qn('group')} = 'treatment' "
        )
        cursor.execute(
            f"INSERT INTO {tc_t} (membership_id, from_tier_id, to_tier_id, reason, note, actor_id, at) "
            f"SELECT m.id, NULL, m.tier_id, 'enrolment', '', %s, %s {new_treatment}"
            f"AND NOT EXISTS (SELECT 1 FROM {tc_t} t WHERE t.membership_id = m.id AND t.reason = 'enrolment')",
            [enrolment.created_by_id, now_db, programme.pk, run.pk],
        )
        timings["history"] = round(time.perf_counter() - mark, 3)

    # Logins that verified their email before their customer was enrolled (the allauth adapter links only
    # at verification time).
    mark = time.perf_counter()
    linked = member_accounts_link_enrolled(programme_id=programme.pk, segment_run_id=run.pk, now=now)
    timings["accounts"] = round(time.perf_counter() - mark, 3)

    mark = time.perf_counter()
    result = {**enrolment_result(programme=programme, segment_run=run, tiers=tiers), "accounts_linked": linked}
    timings["result"] = round(time.perf_counter() - mark, 3)
    timings["total"] = round(time.perf_counter() - started, 3)
    Enrolment.objects.filter(pk=enrolment_id).update(
        status=RunStatus.SUCCEEDED,
        progress=100,
        enrolled_count=enrolled,
        skipped_count=skipped,
        result=result,
        timings=timings,
        heartbeat_at=timezone.now(),
        finished_at=timezone.now(),
    )
    return enrolled


def enrolment_retry(*, enrolment: Enrolment) -> Enrolment:
    """A failed enrolment runs again (409 `run_not_failed` otherwise). It writes only the memberships that are
    still missing, so a retry after a partial failure is safe."""
    return runs.run_retry(Enrolment, enrolment.pk, task_name="loyalty.tasks.run_enrolment")


def enrolments_reconcile() -> dict[str, list[int]]:
    """Requeue or fail enrolments that never started or whose worker died (beat, core.runs)."""
    return runs.runs_reconcile(Enrolment, task_name="loyalty.tasks.run_enrolment")


def _points(share: float | None) -> float | None:
    return None if share is None else round(share * 100, 2)


def _float_cast() -> str:
    return "DOUBLE PRECISION" if connection.vendor == "postgresql" else "REAL"


def enrolment_result(*, programme: Programme, segment_run: SegmentRun, tiers) -> dict:
    """Counts per group and tier, balance of the two groups, sample-ratio checks and detectable effect."""
    qn = connection.ops.quote_name
    m_t, cm_t = table(Membership), table(CustomerMetrics)
    fl = _float_cast()
    holdout = float(programme.holdout_percent)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {qn('group')}, COALESCE(tier_id, shadow_tier_id), COUNT(*) FROM {m_t} "
            f"WHERE programme_id = %s AND source_run_id = %s GROUP BY {qn('group')}, COALESCE(tier_id, shadow_tier_id)",
            [programme.pk, segment_run.pk],
        )
        counts = {(group, tier_id): count for group, tier_id, count in cursor.fetchall()}
        cursor.execute(
            f"SELECT m.{qn('group')}, COUNT(cm.customer_id), "
            f"AVG(CAST(cm.revenue_minor AS {fl})), AVG(CAST(cm.revenue_minor AS {fl}) * cm.revenue_minor), "
            f"AVG(cm.engagement_score), AVG(cm.engagement_score * cm.engagement_score) "
            f"FROM {m_t} m LEFT JOIN {cm_t} cm ON cm.customer_id = m.customer_id AND cm.scoring_run_id = %s "
            f"WHERE m.programme_id = %s AND m.source_run_id = %s GROUP BY m.{qn('group')}",
            [segment_run.scoring_run_id, programme.pk, segment_run.pk],
        )
        moments = {row[0]: row[1:] for row in cursor.fetchall()}
        cursor.execute(
            f"SELECT {qn('group')}, COUNT(*) FROM {m_t} WHERE programme_id = %s AND status <> 'ended' "
            f"GROUP BY {qn('group')}",
            [programme.pk],
        )
        live = dict(cursor.fetchall())

    per_tier = []
    for tier in tiers:
        treatment, control = counts.get(("treatment", tier.pk), 0), counts.get(("control", tier.pk), 0)
        per_tier.append(
            {
                "tier_id": tier.pk,
                "tier": tier.name,
                "rank": tier.rank,
                "treatment": treatment,
                "control": control,
                "sample_ratio": sample_ratio_check(treatment=treatment, control=control, holdout_percent=holdout),
            }
        )
    total_t = sum(v for (g, _), v in counts.items() if g == "treatment")
    total_c = sum(v for (g, _), v in counts.items() if g == "control")

    def group_stats(group: str) -> dict:
        n, rev, rev2, eng, eng2 = moments.get(group, (0, None, None, None, None))
        return {
            "customers": total_t if group == "treatment" else total_c,
            "with_metrics": n,
            "revenue_minor_mean": None if rev is None else round(rev, 2),
            "revenue_minor_sd": None if rev is None else round(max(rev2 - rev * rev, 0.0) ** 0.5, 2),
            "engagement_mean": None if eng is None else round(eng, 4),
            "engagement_sd": None if eng is None else round(max(eng2 - eng * eng, 0.0) ** 0.5, 4),
        }

    treatment_stats, control_stats = group_stats("treatment"), group_stats("control")

    def smd(metric: str) -> float | None:
        mt, mc = treatment_stats[f"{metric}_mean"], control_stats[f"{metric}_mean"]
        st, sc = treatment_stats[f"{metric}_sd"], control_stats[f"{metric}_sd"]
        if None in (mt, mc, st, sc):
            return None
        pooled = ((st**2 + sc**2) / 2) ** 0.5
        return round((mt - mc) / pooled, 4) if pooled else 0.0

    live_t, live_c = live.get("treatment", 0), live.get("control", 0)
    baseline = programme.expected_retention
    mde = retention_mde(treatment=live_t, control=live_c, baseline=baseline)
    return {
        "holdout_percent": holdout,
        "totals": {"treatment": total_t, "control": total_c},
        "per_tier": per_tier,
        "sample_ratio": sample_ratio_check(treatment=total_t, control=total_c, holdout_percent=holdout),
        "balance": {
            "treatment": treatment_stats,
            "control": control_stats,
            "standardized_mean_difference": {"revenue": smd("revenue_minor"), "engagement": smd("engagement")},
        },
        "power": {
            "programme_treatment": live_t,
            "programme_control": live_c,
            "expected_retention": baseline,
            "min_detectable_retention_effect_points": _points(mde),
            "by_holdout_percent": {
                str(h): _points(
                    retention_mde_for_holdout(customers=live_t + live_c, holdout_percent=h, baseline=baseline)
                )
                for h in MDE_TABLE_HOLDOUTS
            },
        },
    }
