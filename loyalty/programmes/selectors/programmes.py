"""Reads for the programme manager and the member's own view."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.db.models import Count, QuerySet, Subquery
from django.utils import timezone

from accounts.models import Role
from accounts.services import user_has_role
from core.errors import NotFound
from loyalty.customers.models import Channel, Interaction
from loyalty.programmes.models import Membership, Programme, Tier, TierChange
from loyalty.programmes.selectors.members import MemberContext, effective_tier, member_membership_or_none
from loyalty.programmes.services.tier_policy import latest_scoring_runs, programme_next_evaluation
from loyalty.segmentation.models import CustomerMetrics

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
    tiers = list(Tier.objects.filter(programme=programme).order_by("rank"))
    start, end = _month_bounds(now)
    used = Interaction.objects.filter(
        customer_id=membership.customer_id,
        channel=Channel.CONCIERGE,
        kind=CONCIERGE_REQUEST_KIND,
        occurred_at__gte=start,
        occurred_at__lt=end,
    ).count()
    allowance = tier.monthly_request_allowance if tier else 0

    metric = programme.qualifying_metric
    # The member's metric in the latest succeeded scoring run (None before any): one query.
    latest_run = latest_scoring_runs(as_of=now).values("pk")[:1]
    value = (
        CustomerMetrics.objects.filter(scoring_run=Subquery(latest_run), customer_id=membership.customer_id)
        .values_list(metric, flat=True)
        .first()
    )
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
