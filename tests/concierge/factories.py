"""Concierge test helpers: members linked to users, and requests made through the services."""

from __future__ import annotations

from datetime import UTC, datetime

from concierge.services.requests import request_create
from tests.factories import MembershipFactory, TierFactory, UserFactory

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def make_member(*, tier=None, name: str = "Ada Lovelace", membership_kwargs: dict | None = None, **tier_kwargs):
    """A user who is the customer of an active treatment membership. Returns (user, membership)."""
    user = UserFactory(roles=["member"])
    tier = tier or TierFactory(**tier_kwargs)
    membership = MembershipFactory(
        programme=tier.programme, tier=tier, customer__name=name, **(membership_kwargs or {})
    )
    customer = membership.customer
    customer.user = user
    customer.save(update_fields=["user"])
    return user, membership


def make_request(user, *, now: datetime = NOW, category: str = "dining", subject: str = "A table for two", **kw):
    return request_create(user=user, category=category, subject=subject, now=now, **kw)
