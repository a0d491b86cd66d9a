"""Pieces every community service shares: who may act, posting limits, engagement interactions."""

from __future__ import annotations

from datetime import datetime, timedelta

from core.errors import Throttled
from loyalty.customers.models import Channel, Customer
from loyalty.ingestion.services.interactions import interaction_record
from loyalty.programmes.models import Membership
from loyalty.programmes.selectors.members import member_membership

# Posting limits (per member): ideas per rolling day, comments per rolling hour.
IDEAS_PER_DAY = 3
COMMENTS_PER_HOUR = 10


def acting_member(user) -> Membership:
    """The caller's active treatment membership, its customer row locked until the end of the transaction, so
    that a member's own posts are counted one at a time (limits hold under concurrency). Anyone else, control
    customers included, gets the same 403 `not_a_member`."""
    membership = member_membership(user)
    Customer.objects.select_for_update().filter(pk=membership.customer_id).first()
    return membership


def limit_check(*, recent: int, allowed: int, what: str, window: timedelta, now: datetime) -> None:
    if recent >= allowed:
        hours = int(window.total_seconds() // 3600)
        raise Throttled(
            f"You may post at most {allowed} {what} per {hours} hour(s). Try again later.",
            code="posting_limit",
            fields={"limit": allowed, "window_hours": hours, "kind": what},
        )


def social_interaction(*, customer_id: int, kind: str, at: datetime, ref: str) -> None:
    """One engagement interaction on the social channel, idempotent by `community-<ref>`."""
    interaction_record(
        customer=Customer(pk=customer_id),
        channel=Channel.SOCIAL,
        kind=kind,
        occurred_at=at,
        external_id=f"community-{ref}",
    )
