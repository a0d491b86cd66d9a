"""Reads for the programme manager and the member's own view."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.db import connection, connections
from django.db.models import Count, QuerySet
from django.utils import timezone

from accounts.models import Role
from accounts.services import user_has_role
from core.errors import NotFound
from core.rows import Columns, Statement
from loyalty.customers.models import Channel, Interaction
from loyalty.programmes.models import Membership, Programme, Tier, TierChange
from loyalty.programmes.selectors.members import MemberContext, effective_tier, member_membership_or_none
from loyalty.programmes.services.tier_policy import programme_next_evaluation
from loyalty.segmentation.models import CustomerMetrics, RunStatus, ScoringRun

# The concierge records one interaction of this kind per new request (loyalty never imports concierge).
CONCIERGE_REQUEST_KIND = "request_created"
NO_MEMBERSHIP = "no_membership"


def programme_get(programme_id: int) -> Programme:
    programme = Programme.objects.filter(pk=programme_id).first()
    if programme is None:
        raise NotFound("No such programme.", code="programme_not_found")
    return programme


def tier_get(programme: Programme, tier_id: int) -> Tier:
    tier = Tier.objects.filter(programme=programme, pk=tier_id).first()
    if tier is None:
        raise NotFound("No such tier in this programme.", code="tier_not_found")
    return tier


def membership_get(programme: Programme, membership_id: int) -> Membership:
    membership = (
        Membership.objects.select_related("customer", "tier", "shadow_tier", "override_tier")
        .filter(programme=programme, pk=membership_id)
        .first()
    )
    if membership is None:
        raise NotFound("No such membership in this programme.", code="membership_not_found")
    return membership


def memberships_list(
    *,
    programme: Programme,
    group: str | None = None,
    status: str | None = None,
    tier_id: int | None = None,
    source_run_id: int | None = None,
    customer_external_id: str | None = None,
    below_threshold: bool | None = None,
    has_override: bool | None = None,
) -> QuerySet[Membership]:
    qs = Membership.objects.filter(programme=programme).select_related(
        "customer", "tier", "shadow_tier", "override_tier"
    )
    if group:
        qs = qs.filter(group=group)
    if status:
        qs = qs.filter(status=status)
    if tier_id is not None:
        qs = qs.filter(tier_id=tier_id) | qs.filter(shadow_tier_id=tier_id)
    if source_run_id is not None:
        qs = qs.filter(source_run_id=source_run_id)
    if customer_external_id:
        qs = qs.filter(customer__external_id=customer_external_id)
    if below_threshold is not None:
        qs = qs.filter(below_threshold_since__isnull=not below_threshold)
    if has_override is not None:
        qs = qs.filter(override_tier__isnull=not has_override)
    return qs.order_by("id")


def programme_group_counts(*, programme: Programme) -> dict[str, int]:
    """Live (not ended) memberships per group, both groups always present (one query)."""
    counts = dict(
        Membership.objects.filter(programme=programme)
        .exclude(status=Membership.Status.ENDED)
        .order_by()
        .values_list("group")
        .annotate(n=Count("id"))
    )
    return {group: counts.get(group, 0) for group in Membership.Group.values}


def tier_changes_list(
    *, programme: Programme, membership_id: int | None = None, reason: str | None = None
) -> QuerySet[TierChange]:
    qs = TierChange.objects.filter(membership__programme=programme).select_related(
        "from_tier", "to_tier", "membership__customer"
    )
    if membership_id is not None:
        qs = qs.filter(membership_id=membership_id)
    if reason:
        qs = qs.filter(reason=reason)
    return qs.order_by("-at", "-id")


def _month_bounds(now: datetime) -> tuple[datetime, datetime]:
    start = datetime(now.year, now.month, 1, tzinfo=UTC)
    end = datetime(now.year + (now.month == 12), now.month % 12 + 1, 1, tzinfo=UTC)
    return start, end


_TIER = Columns(Tier, "t")


def _member_view_sql(using: str, metric: str) -> str:
    """The programme's tiers by rank, each row with the concierge requests the member sent this month and the
    member's `metric` in the latest succeeded scoring run (NULL before any): three reads in one statement (the
    two scalar subqueries are uncorrelated, so the database evaluates each once)."""
    q = connections[using].ops.quote_name
    metrics, runs = CustomerMetrics._meta, ScoringRun._meta
    latest_run = (
        f"SELECT r.{q('id')} FROM {q(runs.db_table)} r WHERE r.{q('status')} = %s AND r.{q('as_of')} <= %s "
        f"ORDER BY r.{q('as_of')} DESC, r.{q('id')} DESC LIMIT 1"
    )
    return (
        f"SELECT {_TIER.sql(using)}, "
        f"(SELECT COUNT(*) FROM {q(Interaction._meta.db_table)} i WHERE i.{q('customer_id')} = %s "
        f"AND i.{q('channel')} = %s AND i.{q('kind')} = %s AND i.{q('occurred_at')} >= %s "
        f"AND i.{q('occurred_at')} < %s), "
        f"(SELECT cm.{q(metrics.get_field(metric).column)} FROM {q(metrics.db_table)} cm "
        f"WHERE cm.{q('scoring_run_id')} = ({latest_run}) AND cm.{q('customer_id')} = %s) "
        # One row even for a programme without tiers (its tier columns NULL).
        f"FROM (SELECT 1 AS one) one LEFT OUTER JOIN {q(Tier._meta.db_table)} t ON t.{q('programme_id')} = %s "
        f"ORDER BY t.{q('rank')} ASC"
    )


_MEMBER_VIEW: dict[str, Statement] = {}  # per qualifying metric (a CustomerMetrics field), built on first use


def _member_view_reads(membership: Membership, *, metric: str, now: datetime, month: tuple[datetime, datetime]):
    """(the programme's tiers by rank, concierge requests this month, the member's metric in the latest succeeded
    scoring run or None): one query."""
    adapt = connection.ops.adapt_datetimefield_value
    statement = _MEMBER_VIEW.get(metric)
    if statement is None:
        statement = _MEMBER_VIEW[metric] = Statement(
            lambda using: _member_view_sql(using, metric), name=f"member_view_{metric}"
        )
    rows = statement.fetchall(
        [
            membership.customer_id,
            Channel.CONCIERGE,
            CONCIERGE_REQUEST_KIND,
            adapt(month[0]),
            adapt(month[1]),
            RunStatus.SUCCEEDED,
            adapt(now),
            membership.customer_id,
            membership.programme_id,
        ]
    )
    tiers = [tier for tier in (_TIER.load(row) for row in rows) if tier is not None]
    used, value = rows[0][_TIER.width], rows[0][_TIER.width + 1]
    return tiers, used, value


def member_view(user, *, now: datetime | None = None, member: MemberContext | None = None) -> dict:
    """The member's own membership. Anyone without an active treatment membership (held out, ended,
    unlinked, no member role) gets the same 404. `member`: the request's member context, when resolved."""
    now = now or timezone.now()
    if member is not None:
        membership = member.membership if member.has_member_role else None
    else:
        membership = member_membership_or_none(user) if user_has_role(user, Role.MEMBER) else None
    if membership is None:
        raise NotFound("You have no programme membership.", code=NO_MEMBERSHIP)
    programme = membership.programme
    tier = effective_tier(membership, now=now)
    start, end = _month_bounds(now)
    tiers, used, value = _member_view_reads(membership, metric=programme.qualifying_metric, now=now, month=(start, end))
    allowance = tier.monthly_request_allowance if tier else 0
    metric = programme.qualifying_metric
    next_tier = next((t for t in tiers if tier and t.rank > tier.rank), None)
    progress = {"metric": metric, "value": value, "next_tier": None, "threshold": None, "remaining": None}
    if next_tier is not None:
        progress.update(
            next_tier=next_tier.name,
            threshold=next_tier.threshold,
            remaining=None if value is None else round(max(next_tier.threshold - value, 0.0), 4),
        )
    warning = None
    if membership.below_threshold_since and membership.tier_id and not membership.override_tier_id:
        lower = next((t for t in reversed(tiers) if t.rank < membership.tier.rank), None)
        if lower is not None:
            earliest = membership.below_threshold_since + timedelta(days=programme.grace_period_days)
            warning = {
                "below_threshold_since": membership.below_threshold_since,
                "downgrade_to": lower.name,
                "earliest_downgrade_on": earliest,
                "threshold": membership.tier.threshold,
            }
    override_active = tier is not None and membership.override_tier_id == tier.pk and tier.pk != membership.tier_id
    return {
        "programme": {"id": programme.pk, "name": programme.name, "description": programme.description},
        "tier": {"name": tier.name, "rank": tier.rank} if tier else None,
        "tier_source": "override" if override_active else "evaluated",
        "override_expires_at": membership.override_expires_at if override_active else None,
        "enrolled_at": membership.enrolled_at,
        "benefits": {
            "first_response_sla_hours": tier.first_response_sla_hours,
            "resolution_sla_hours": tier.resolution_sla_hours,
            "monthly_request_allowance": allowance,
            "early_access_hours": tier.early_access_hours,
            "guests_per_booking": tier.guests_per_booking,
        }
        if tier
        else None,
        "allowance": {"monthly": allowance, "used": used, "left": max(allowance - used, 0), "resets_at": end},
        "progress": progress,
        "next_evaluation_at": programme_next_evaluation(programme),
        "downgrade_warning": warning,
    }
