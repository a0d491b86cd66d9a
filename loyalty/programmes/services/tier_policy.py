"""Tier policy: periodic set-based re-evaluation of every treatment member, and manual overrides.

- Upgrade at once, to the best tier the member qualifies for.
- Downgrade only after the member stayed below their tier's threshold for the programme's grace period
  (counted from `below_threshold_since`), one tier at a time; the grace restarts after each step.
- An unexpired manual override wins: the member is not evaluated until it expires (`override_expired`).
- Members whose customer churned end (both groups).
Every change writes a TierChange; upgrades, downgrades and downgrade warnings queue an email (outbox).
Idempotent: re-running on the same day changes nothing (a downgrade needs a `below_threshold_since` at
least one full grace period, and at least one day, in the past)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import User
from core import outbox
from core.errors import BusinessRuleError, ValidationFailed
from loyalty.programmes.models import MemberNotification, Membership, Programme, Tier, TierChange
from loyalty.programmes.services.memberships import memberships_end_churned_in_programme
from loyalty.programmes.services.tier_sql import qualifying_tier_case, table, tier_map_case
from loyalty.segmentation.models import CustomerMetrics, RunStatus, ScoringRun

EVAL_TABLE = "loyalty_tier_eval_tmp"


def latest_scoring_runs(*, as_of: datetime | None = None) -> QuerySet[ScoringRun]:
    """Succeeded scoring runs as of `as_of`, latest first."""
    runs = ScoringRun.objects.filter(status=RunStatus.SUCCEEDED)
    if as_of is not None:
        runs = runs.filter(as_of__lte=as_of)
    return runs.order_by("-as_of", "-id")


def latest_scoring_run(*, as_of: datetime | None = None) -> ScoringRun | None:
    return latest_scoring_runs(as_of=as_of).first()


def programme_next_evaluation(programme: Programme) -> datetime:
    base = programme.last_evaluated_at or programme.created_at
    return base + timedelta(days=programme.evaluation_cadence_days)


def programme_evaluate(
    *, programme: Programme, now: datetime | None = None, scoring_run: ScoringRun | None = None
) -> dict:
    """Re-evaluate every treatment member of `programme` against the latest succeeded scoring run."""
    now = now or timezone.now()
    with transaction.atomic():
        summary = _evaluate(programme_id=programme.pk, now=now, scoring_run=scoring_run)
        if summary["upgrades"] or summary["downgrades"] or summary["downgrade_warnings"]:
            outbox.enqueue("loyalty.tasks.send_member_notifications")
    return summary


def _evaluate(*, programme_id: int, now: datetime, scoring_run: ScoringRun | None) -> dict:
    started = time.perf_counter()
    programme = Programme.objects.select_for_update().get(pk=programme_id)
    tiers = list(Tier.objects.filter(programme=programme).order_by("rank"))
    scoring_run = scoring_run or latest_scoring_run(as_of=now)
    today = now.date()
    ops, qn = connection.ops, connection.ops.quote_name
    now_db, today_db = ops.adapt_datetimefield_value(now), ops.adapt_datefield_value(today)
    cutoff_db = ops.adapt_datefield_value(today - timedelta(days=max(programme.grace_period_days, 1)))
    m_t, tc_t, n_t, cm_t = table(Membership), table(TierChange), table(MemberNotification), table(CustomerMetrics)
    ev = qn(EVAL_TABLE)
    summary = {
        "programme_id": programme.pk,
        "scoring_run_id": scoring_run.pk if scoring_run else None,
        "evaluated": 0,
        "upgrades": 0,
        "downgrades": 0,
        "downgrade_warnings": 0,
        "recovered": 0,
        "overrides_expired": 0,
        "ended": memberships_end_churned_in_programme(programme_id=programme.pk, now=now),
    }
    with connection.cursor() as cursor:
        # Expired overrides: back to the evaluated tier, grace restarts.
        expired = (
            f"FROM {m_t} m WHERE m.programme_id = %s AND m.status = 'active' "
            f"AND m.override_tier_id IS NOT NULL AND m.override_expires_at <= %s"
        )
        cursor.execute(
            f"INSERT INTO {tc_t} (membership_id, from_tier_id, to_tier_id, reason, note, actor_id, at) "
            f"SELECT m.id, m.override_tier_id, m.tier_id, 'override_expired', 'override expired', NULL, %s {expired}",
            [now_db, programme.pk, now_db],
        )
        cursor.execute(
            f"UPDATE {m_t} SET override_tier_id = NULL, override_expires_at = NULL, override_reason = '', "
            f"below_threshold_since = NULL, last_evaluated_at = %s WHERE id IN (SELECT m.id {expired})",
            [now_db, programme.pk, now_db],
        )
        summary["overrides_expired"] = cursor.rowcount

        if tiers and scoring_run is not None:
            summary.update(_apply_policy(cursor, programme, tiers, scoring_run, now_db, today_db, cutoff_db))

    del n_t, cm_t, ev
    Programme.objects.filter(pk=programme.pk).update(last_evaluated_at=now)
    summary["seconds"] = round(time.perf_counter() - started, 3)
    return summary


def _apply_policy(cursor, programme, tiers, scoring_run, now_db, today_db, cutoff_db) -> dict:
    qn = connection.ops.quote_name
    m_t, tc_t, n_t, cm_t = table(Membership), table(TierChange), table(MemberNotification), table(CustomerMetrics)
    ev = qn(EVAL_TABLE)
    by_rank = sorted(tiers, key=lambda t: t.rank)
    rank_of = {t.pk: t.rank for t in by_rank}
    lower_of = {t.pk: (by_rank[i - 1].pk if i else None) for i, t in enumerate(by_rank)}
    lower_rank_of = {t.pk: (by_rank[i - 1].rank if i else None) for i, t in enumerate(by_rank)}
    metric = f"cm.{qn(programme.qualifying_metric)}"
    q_tier_sql, q_tier_params = qualifying_tier_case(metric, tiers, output="pk")
    q_rank_sql, q_rank_params = qualifying_tier_case(metric, tiers, output="rank")
    cur_rank_sql, cur_rank_params = tier_map_case("m.tier_id", rank_of)
    lower_sql, lower_params = tier_map_case("m.tier_id", lower_of)
    lower_rank_sql, lower_rank_params = tier_map_case("m.tier_id", lower_rank_of)

    cursor.execute(f"DROP TABLE IF EXISTS {ev}")
    cursor.execute(
        f"CREATE TEMPORARY TABLE {ev} AS SELECT m.id AS membership_id, m.tier_id AS cur_tier, "
        f"{cur_rank_sql} AS cur_rank, {q_tier_sql} AS q_tier, {q_rank_sql} AS q_rank, "
        f"{lower_sql} AS lower_tier, {lower_rank_sql} AS lower_rank, m.below_threshold_since AS below_since "
        f"FROM {m_t} m JOIN {cm_t} cm ON cm.customer_id = m.customer_id AND cm.scoring_run_id = %s "
        f"WHERE m.programme_id = %s AND m.status = 'active' AND m.{qn('group')} = 'treatment' "
        f"AND m.tier_id IS NOT NULL AND m.override_tier_id IS NULL",
        [*cur_rank_params, *q_tier_params, *q_rank_params, *lower_params, *lower_rank_params]
        + [scoring_run.pk, programme.pk],
    )
    cursor.execute(f"SELECT COUNT(*) FROM {ev}")
    summary_evaluated = cursor.fetchone()[0]
    if connection.vendor == "postgresql":
        cursor.execute(f"ANALYZE {ev}")

    def history(condition: str, to_column: str, reason: str) -> None:
        cursor.execute(
            f"INSERT INTO {tc_t} (membership_id, from_tier_id, to_tier_id, reason, note, actor_id, at) "
            f"SELECT e.membership_id, e.cur_tier, e.{to_column}, %s, '', NULL, %s FROM {ev} e WHERE {condition}",
            [reason, now_db],
        )
        cursor.execute(
            f"INSERT INTO {n_t} (membership_id, kind, dedupe_key, tier_change_id, created_at) "
            f"SELECT t.membership_id, %s, CAST(t.id AS TEXT), t.id, %s FROM {tc_t} t "
            f"JOIN {ev} e ON e.membership_id = t.membership_id WHERE t.at = %s AND t.reason = %s AND {condition}",
            [reason, now_db, now_db, reason],
        )

    def update(assignments: str, condition: str, params: list) -> int:
        # Only memberships the evaluation changes are stamped (stamping all would rewrite every row each time).
        cursor.execute(
            f"UPDATE {m_t} SET {assignments}, last_evaluated_at = %s FROM {ev} e "
            f"WHERE {m_t}.id = e.membership_id AND {condition}",
            [*params[: assignments.count("%s")], now_db, *params[assignments.count("%s") :]],
        )
        return cursor.rowcount

    result = {"evaluated": summary_evaluated}
    upgrade = "e.q_rank > e.cur_rank"
    history(upgrade, "q_tier", TierChange.Reason.UPGRADE)
    result["upgrades"] = update("tier_id = e.q_tier, below_threshold_since = NULL", upgrade, [])

    recovered = "e.q_rank = e.cur_rank AND e.below_since IS NOT NULL"
    result["recovered"] = update("below_threshold_since = NULL", recovered, [])

    downgrade = (
        "e.q_rank < e.cur_rank AND e.lower_tier IS NOT NULL AND e.below_since IS NOT NULL AND e.below_since <= %s"
    )
    cursor.execute(
        f"INSERT INTO {tc_t} (membership_id, from_tier_id, to_tier_id, reason, note, actor_id, at) "
        f"SELECT e.membership_id, e.cur_tier, e.lower_tier, 'downgrade', '', NULL, %s FROM {ev} e WHERE {downgrade}",
        [now_db, cutoff_db],
    )
    cursor.execute(
        f"INSERT INTO {n_t} (membership_id, kind, dedupe_key, tier_change_id, created_at) "
        f"SELECT t.membership_id, 'downgrade', CAST(t.id AS TEXT), t.id, %s FROM {tc_t} t "
        f"JOIN {ev} e ON e.membership_id = t.membership_id WHERE t.at = %s AND t.reason = 'downgrade' AND {downgrade}",
        [now_db, now_db, cutoff_db],
    )
    # One step down; the grace restarts today if the member is still below the new tier.
    result["downgrades"] = update(
        "tier_id = e.lower_tier, below_threshold_since = CASE WHEN e.q_rank < e.lower_rank THEN %s ELSE NULL END",
        downgrade,
        [today_db, cutoff_db],
    )

    newly_below = "e.q_rank < e.cur_rank AND e.lower_tier IS NOT NULL AND e.below_since IS NULL"
    cursor.execute(
        f"INSERT INTO {n_t} (membership_id, kind, dedupe_key, tier_change_id, created_at) "
        f"SELECT e.membership_id, 'downgrade_warning', %s, NULL, %s FROM {ev} e WHERE {newly_below} "
        f"AND NOT EXISTS (SELECT 1 FROM {n_t} n WHERE n.membership_id = e.membership_id "
        f"AND n.kind = 'downgrade_warning' AND n.dedupe_key = %s)",
        [f"warn-{today_db}", now_db, f"warn-{today_db}"],
    )
    result["downgrade_warnings"] = update("below_threshold_since = %s", newly_below, [today_db])
    cursor.execute(f"DROP TABLE {ev}")
    return result


def _validate_override(membership: Membership, tier: Tier, expires_at: datetime, reason: str, now: datetime) -> None:
    fields: dict[str, list[str]] = {}
    if tier.programme_id != membership.programme_id:
        fields["tier_id"] = ["Not a tier of this membership's programme."]
    if expires_at <= now:
        fields["expires_at"] = ["Must be in the future."]
    if not reason.strip():
        fields["reason"] = ["Required."]
    if fields:
        raise ValidationFailed("The override is not valid.", code="invalid_override", fields=fields)
    if membership.group != Membership.Group.TREATMENT or membership.status != Membership.Status.ACTIVE:
        raise BusinessRuleError(
            "Only an active treatment membership can have a tier override.", code="membership_not_active"
        )


@transaction.atomic
def membership_override_set(
    *,
    membership: Membership,
    tier: Tier,
    expires_at: datetime,
    reason: str,
    actor: User | None,
    now: datetime | None = None,
) -> Membership:
    now = now or timezone.now()
    membership = Membership.objects.select_for_update().get(pk=membership.pk)
    _validate_override(membership, tier, expires_at, reason, now)
    from loyalty.programmes.selectors.members import effective_tier

    previous = effective_tier(membership, now=now)
    membership.override_tier = tier
    membership.override_expires_at = expires_at
    membership.override_reason = reason.strip()
    membership.save(update_fields=["override_tier", "override_expires_at", "override_reason"])
    TierChange.objects.create(
        membership=membership,
        from_tier=previous,
        to_tier=tier,
        reason=TierChange.Reason.OVERRIDE,
        note=reason.strip()[:255],
        actor=actor,
        at=now,
    )
    return membership


@transaction.atomic
def membership_override_clear(*, membership: Membership, actor: User | None, now: datetime | None = None) -> Membership:
    now = now or timezone.now()
    membership = Membership.objects.select_for_update().get(pk=membership.pk)
    if membership.override_tier_id is None:
        return membership
    TierChange.objects.create(
        membership=membership,
        from_tier_id=membership.override_tier_id,
        to_tier_id=membership.tier_id,
        reason=TierChange.Reason.OVERRIDE_EXPIRED,
        note="override removed by a manager",
        actor=actor,
        at=now,
    )
    membership.override_tier = None
    membership.override_expires_at = None
    membership.override_reason = ""
    membership.below_threshold_since = None
    membership.save(update_fields=["override_tier", "override_expires_at", "override_reason", "below_threshold_since"])
    return membership


def programmes_evaluate_due(*, now: datetime | None = None) -> list[dict]:
    """Evaluate every active programme whose next evaluation is due (the beat task calls this)."""
    now = now or timezone.now()
    summaries = []
    for programme in Programme.objects.filter(status=Programme.Status.ACTIVE).order_by("id"):
        if programme_next_evaluation(programme) <= now:
            summaries.append(programme_evaluate(programme=programme, now=now))
    return summaries
