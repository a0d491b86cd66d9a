"""Who is a member: used by the member-facing APIs of loyalty, concierge and events.

The member context (user, customer, active treatment membership, effective tier) is resolved once per request
by `member_context(request)`: one query (the membership with its programme, tiers and customer, and whether the
user has the member role), kept on the request. Routers hand its parts to services and selectors, which keep
their object-level checks (a booking is looked up within the membership, a request within the user's own)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import connections
from django.utils import timezone

from accounts.models import Role, User
from accounts.services import user_has_role
from core.auth import request_user, require_role
from core.errors import PermissionDenied
from core.rows import Columns, Statement
from loyalty.customers.models import Customer
from loyalty.programmes.models import Membership, Programme, Tier

NOT_A_MEMBER = "not_a_member"
_REQUEST_ATTRIBUTE = "_premier_member_context"


def effective_tier(membership: Membership, *, now: datetime | None = None) -> Tier | None:
    """The tier whose benefits apply: an unexpired manual override wins over the evaluated tier."""
    now = now or timezone.now()
    if membership.override_tier_id and membership.override_expires_at and membership.override_expires_at > now:
        return membership.override_tier
    return membership.tier


def _active_memberships(user):
    return (
        Membership.objects.select_related("programme", "tier", "override_tier", "customer")
        .filter(customer__user=user, group=Membership.Group.TREATMENT, status=Membership.Status.ACTIVE)
        .order_by("-enrolled_at", "-id")
    )


def member_membership_or_none(user) -> Membership | None:
    """The user's active treatment membership (most recent enrolment if several), or None.

    Control-group (holdout) and ended memberships are never returned: a held-out customer gets no benefits
    and must not learn that they are held out."""
    if not getattr(user, "is_authenticated", False):
        return None
    return _active_memberships(user).first()


def member_membership(user) -> Membership:
    """Like member_membership_or_none, but a 403 `not_a_member` for anyone without an active membership.
    The message is the same for control customers, ended members and strangers."""
    membership = member_membership_or_none(user)
    if membership is None:
        raise PermissionDenied("You have no active programme membership.", code=NOT_A_MEMBER)
    return membership


@dataclass(frozen=True)
class MemberContext:
    """The caller as a member, resolved once per request. `membership` is the active treatment membership
    (None for control customers, ended members and strangers); `tier` its effective tier when resolved."""

    user: User
    membership: Membership | None
    tier: Tier | None
    has_member_role: bool

    @property
    def customer(self) -> Customer | None:
        return self.membership.customer if self.membership is not None else None


def _member_context_sql(using: str) -> str:
    """The active treatment memberships of a user, most recent enrolment first, joined with programme, tiers and
    customer, and whether the user has the member role: the query of `_active_memberships(user)` annotated with
    the role, written once (the ORM compiled its four joins anew on every request)."""
    quote = connections[using].ops.quote_name
    role = User.groups.through
    group = role._meta.get_field("group").related_model
    return (
        f"SELECT {_MEMBERSHIP.sql(using)}, {_PROGRAMME.sql(using)}, {_TIER.sql(using)}, {_OVERRIDE.sql(using)}, "
        f"{_CUSTOMER.sql(using)}, EXISTS(SELECT 1 FROM {quote(role._meta.db_table)} ug "
        f"INNER JOIN {quote(group._meta.db_table)} g ON g.{quote('id')} = ug.{quote('group_id')} "
        f"WHERE ug.{quote('user_id')} = c.{quote('user_id')} AND g.{quote('name')} = %s) "
        f"FROM {quote(Membership._meta.db_table)} m "
        f"INNER JOIN {quote(Customer._meta.db_table)} c ON c.{quote('id')} = m.{quote('customer_id')} "
        f"INNER JOIN {quote(Programme._meta.db_table)} p ON p.{quote('id')} = m.{quote('programme_id')} "
        f"LEFT OUTER JOIN {quote(Tier._meta.db_table)} t ON t.{quote('id')} = m.{quote('tier_id')} "
        f"LEFT OUTER JOIN {quote(Tier._meta.db_table)} o ON o.{quote('id')} = m.{quote('override_tier_id')} "
        f"WHERE c.{quote('user_id')} = %s AND m.{quote('group')} = %s AND m.{quote('status')} = %s "
        f"ORDER BY m.{quote('enrolled_at')} DESC, m.{quote('id')} DESC LIMIT 1"
    )


_MEMBERSHIP = Columns(Membership, "m")
_PROGRAMME = Columns(Programme, "p")
_TIER = Columns(Tier, "t")
_OVERRIDE = Columns(Tier, "o")
_CUSTOMER = Columns(Customer, "c")
_MEMBER_CONTEXT = Statement(_member_context_sql, name="member_context")


def _load_member_context(user) -> tuple[Membership | None, bool | None]:
    """(the active treatment membership with programme, tiers and customer loaded, whether the user has the
    member role), or (None, None) when there is no such membership. One query."""
    row = _MEMBER_CONTEXT.fetchone([Role.MEMBER, user.pk, Membership.Group.TREATMENT, Membership.Status.ACTIVE])
    if row is None:
        return None, None
    start = 0
    loaded = []
    for columns in (_MEMBERSHIP, _PROGRAMME, _TIER, _OVERRIDE, _CUSTOMER):
        loaded.append(columns.load(row, start))
        start += columns.width
    membership, programme, tier, override, customer = loaded
    # The related caches, as select_related fills them (tiers may be absent: LEFT JOIN).
    membership.programme = programme
    membership.customer = customer
    membership.tier = tier
    membership.override_tier = override
    customer.user = user
    return membership, bool(row[start])


def member_context(request) -> MemberContext:
    """The request's member context, computed on first use and then kept on the request (one query: the
    membership joined with programme, tiers and customer, and the member role as an EXISTS)."""
    cached = getattr(request, _REQUEST_ATTRIBUTE, None)
    if cached is not None:
        return cached
    user = request_user(request)
    membership, has_role = _load_member_context(user)
    # Without a membership (the refusal path) the role decides between `role_required` and `not_a_member`.
    if membership is None:
        has_role = user_has_role(user, Role.MEMBER)
    context = MemberContext(
        user=user,
        membership=membership,
        tier=effective_tier(membership) if membership is not None else None,
        has_member_role=has_role,
    )
    setattr(request, _REQUEST_ATTRIBUTE, context)
    return context


def require_member(request) -> MemberContext:
    """The member context of a caller with the member role and an active treatment membership with a tier;
    403 `role_required` without the role, else 403 `not_a_member` (the same for control customers, ended
    members and strangers)."""
    context = member_context(request)
    if not context.has_member_role:
        require_role(request, Role.MEMBER)  # raises 403 `role_required`
    if context.membership is None or context.tier is None:
        raise PermissionDenied("You have no active programme membership.", code=NOT_A_MEMBER)
    return context
