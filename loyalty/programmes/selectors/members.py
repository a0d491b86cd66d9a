"""Who is a member: used by the member-facing APIs of loyalty, concierge and events."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from core.errors import PermissionDenied
from loyalty.programmes.models import Membership, Tier

NOT_A_MEMBER = "not_a_member"


def effective_tier(membership: Membership, *, now: datetime | None = None) -> Tier | None:
    """The tier whose benefits apply: an unexpired manual override wins over the evaluated tier."""
    now = now or timezone.now()
    if membership.override_tier_id and membership.override_expires_at and membership.override_expires_at > now:
        return membership.override_tier
    return membership.tier


def member_membership_or_none(user) -> Membership | None:
    """The user's active treatment membership (most recent enrolment if several), or None.

    Control-group (holdout) and ended memberships are never returned: a held-out customer gets no benefits
    and must not learn that they are held out."""
    if not getattr(user, "is_authenticated", False):
        return None
    return (
        Membership.objects.select_related("programme", "tier", "override_tier", "customer")
        .filter(customer__user=user, group=Membership.Group.TREATMENT, status=Membership.Status.ACTIVE)
        .order_by("-enrolled_at", "-id")
        .first()
    )


def member_membership(user) -> Membership:
    """Like member_membership_or_none, but a 403 `not_a_member` for anyone without an active membership.
    The message is the same for control customers, ended members and strangers."""
    membership = member_membership_or_none(user)
    if membership is None:
        raise PermissionDenied("You have no active programme membership.", code=NOT_A_MEMBER)
    return membership
