"""Idea rounds: members post, vote (once, withdrawable while the round is open) and comment; managers moderate,
move ideas through their statuses and fund them from the round's budget (never above it, under concurrency)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from community.models import (
    VOTABLE_IDEA_STATUSES,
    Idea,
    IdeaStatus,
    IdeaStatusChange,
    Round,
    Vote,
)
from community.services.common import IDEAS_PER_DAY, acting_member, limit_check, social_interaction
from core.errors import BusinessRuleError, Conflict, NotFound, ValidationFailed
from core.outbox import enqueue
from loyalty.programmes.selectors.members import member_membership

S = IdeaStatus

# Manager transitions (funding goes through idea_fund). Anything else: 409 `invalid_transition`.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    S.SUBMITTED: (S.OPEN, S.DECLINED),
    S.OPEN: (S.SHORTLISTED, S.DECLINED),
    S.SHORTLISTED: (S.OPEN, S.DECLINED),
    S.FUNDED: (S.DELIVERED,),
    S.DELIVERED: (),
    S.DECLINED: (),
}


@transaction.atomic
def round_create(
    *,
    title: str,
    description: str = "",
    starts_at: datetime,
    ends_at: datetime,
    budget: Decimal,
    currency: str = "EUR",
    created_by=None,
) -> Round:
    if ends_at <= starts_at:
        raise ValidationFailed("The round ends before it starts.", fields={"ends_at": ["Must be after starts_at."]})
    if budget < 0:
        raise ValidationFailed("The budget is negative.", fields={"budget": ["Must be at least 0."]})
    return Round.objects.create(
        title=title,
        description=description,
        starts_at=starts_at,
        ends_at=ends_at,
        budget=budget,
        currency=currency,
        created_by=created_by,
    )


def _round_open(round_: Round, now: datetime) -> None:
    if not round_.starts_at <= now < round_.ends_at:
        raise Conflict(
            "The round is not open.",
            code="round_closed",
            fields={"starts_at": round_.starts_at.isoformat(), "ends_at": round_.ends_at.isoformat()},
        )


@transaction.atomic
def idea_post(*, user, round_id: int, title: str, body: str, category: str, now: datetime | None = None) -> Idea:
    """A member posts an idea in an open round (status submitted until a manager opens it)."""
    now = now or timezone.now()
    membership = acting_member(user)
    round_ = Round.objects.filter(pk=round_id).first()
    if round_ is None:
        raise NotFound("Round not found.", code="round_not_found")
    _round_open(round_, now)
    recent = Idea.objects.filter(author_id=membership.customer_id, created_at__gt=now - timedelta(days=1)).count()
    limit_check(recent=recent, allowed=IDEAS_PER_DAY, what="ideas", window=timedelta(days=1), now=now)
    idea = Idea.objects.create(
        round=round_,
        author_id=membership.customer_id,
        title=title.strip(),
        body=body.strip(),
        category=category,
        status=S.SUBMITTED,
        created_at=now,
        updated_at=now,
    )
    social_interaction(customer_id=membership.customer_id, kind="idea_posted", at=now, ref=f"idea-{idea.pk}")
    return idea


def _idea_locked(idea_id: int) -> Idea:
    idea = Idea.objects.select_for_update(of=("self",)).select_related("round").filter(pk=idea_id).first()
    if idea is None:
        raise NotFound("Idea not found.", code="idea_not_found")
    return idea


def _visible_to_members(idea: Idea) -> None:
    """Hidden and not-yet-opened ideas are a 404 to members (as if they did not exist)."""
    if idea.hidden or idea.status == S.SUBMITTED:
        raise NotFound("Idea not found.", code="idea_not_found")


@transaction.atomic
def vote_cast(*, user, idea_id: int, now: datetime | None = None) -> Idea:
    """One vote per member per idea, on open or shortlisted ideas of an open round; a second vote is 409
    `already_voted`. The idea row is locked, so the vote and the counter move together."""
    now = now or timezone.now()
    membership = member_membership(user)  # the idea row is the lock
    idea = _idea_locked(idea_id)
    _visible_to_members(idea)
    _round_open(idea.round, now)
    if idea.status not in VOTABLE_IDEA_STATUSES:
        raise Conflict("This idea takes no more votes.", code="idea_not_votable", fields={"status": idea.status})
    if idea.author_id == membership.customer_id:
        raise BusinessRuleError("You cannot vote for your own idea.", code="own_idea")
    try:
        with transaction.atomic():
            Vote.objects.create(idea=idea, customer_id=membership.customer_id, created_at=now)
    except IntegrityError:
        raise Conflict("You have already voted for this idea.", code="already_voted") from None
    Idea.objects.filter(pk=idea.pk).update(vote_count=F("vote_count") + 1)
    social_interaction(
        customer_id=membership.customer_id, kind="idea_voted", at=now, ref=f"vote-{idea.pk}-{membership.customer_id}"
    )
    idea.refresh_from_db()
    return idea


@transaction.atomic
def vote_withdraw(*, user, idea_id: int, now: datetime | None = None) -> Idea:
    """Withdraw one's vote while the round is open; no vote is 404 `vote_not_found`."""
    now = now or timezone.now()
    membership = member_membership(user)  # the idea row is the lock
    idea = _idea_locked(idea_id)
    _visible_to_members(idea)
    _round_open(idea.round, now)
    if idea.status not in VOTABLE_IDEA_STATUSES:
        raise Conflict("Votes on this idea are final.", code="idea_not_votable", fields={"status": idea.status})
    deleted, _ = Vote.objects.filter(idea=idea, customer_id=membership.customer_id).delete()
    if not deleted:
        raise NotFound("You have not voted for this idea.", code="vote_not_found")
    Idea.objects.filter(pk=idea.pk).update(vote_count=F("vote_count") - 1)
    idea.refresh_from_db()
    return idea


def _status_apply(*, idea: Idea, to_status: str, actor, note: str, now: datetime) -> IdeaStatusChange:
    change = IdeaStatusChange.objects.create(
        idea=idea, from_status=idea.status, to_status=to_status, note=note, actor=actor, at=now
    )
    idea.status = to_status
    idea.updated_at = now
    idea.save(update_fields=["status", "updated_at", "funded_amount"])
    enqueue("community.tasks.notify_idea_author", change.pk)
    return change


@transaction.atomic
def idea_transition(*, idea_id: int, actor, to_status: str, note: str = "", now: datetime | None = None) -> Idea:
    """A manager moves an idea: submitted→open|declined, open→shortlisted|declined, shortlisted→open|declined,
    funded→delivered. Funding is idea_fund. The author is told by email."""
    now = now or timezone.now()
    idea = _idea_locked(idea_id)
    if to_status not in TRANSITIONS.get(idea.status, ()):
        raise Conflict(
            f"An idea cannot go from {idea.status} to {to_status}.",
            code="invalid_transition",
            fields={"from": idea.status, "to": to_status, "allowed": list(TRANSITIONS.get(idea.status, ()))},
        )
    _status_apply(idea=idea, to_status=to_status, actor=actor, note=note, now=now)
    return idea


@transaction.atomic
def idea_fund(*, idea_id: int, actor, amount: Decimal, now: datetime | None = None) -> Idea:
    """Fund a shortlisted idea with `amount` from its round's budget. The budget is taken by a conditional
    UPDATE (funded_total + amount <= budget), so concurrent decisions never exceed it; a CheckConstraint is
    the backstop. Over budget: 409 `budget_exceeded` with what is left."""
    now = now or timezone.now()
    if amount <= 0:
        raise ValidationFailed("The amount must be positive.", fields={"amount": ["Must be greater than 0."]})
    idea = _idea_locked(idea_id)
    if idea.status != S.SHORTLISTED:
        raise Conflict(
            "Only a shortlisted idea can be funded.", code="idea_not_shortlisted", fields={"status": idea.status}
        )
    if idea.hidden:
        raise Conflict("A hidden idea cannot be funded.", code="idea_hidden")
    taken = Round.objects.filter(pk=idea.round_id, funded_total__lte=F("budget") - amount).update(
        funded_total=F("funded_total") + amount
    )
    if not taken:
        round_ = Round.objects.get(pk=idea.round_id)
        raise Conflict(
            "The round's budget cannot cover this amount.",
            code="budget_exceeded",
            fields={"budget": str(round_.budget), "remaining": str(round_.budget - round_.funded_total)},
        )
    idea.funded_amount = amount
    _status_apply(idea=idea, to_status=S.FUNDED, actor=actor, note=f"Funded with {amount}.", now=now)
    return idea


@transaction.atomic
def idea_hide(*, idea_id: int, actor, reason: str, now: datetime | None = None) -> Idea:
    """Moderation: the idea leaves every member list and page; its votes stay counted for the record."""
    if not reason.strip():
        raise ValidationFailed("Give a reason.", fields={"reason": ["Must not be blank."]})
    idea = _idea_locked(idea_id)
    if idea.hidden:
        raise Conflict("The idea is already hidden.", code="already_hidden")
    idea.hidden, idea.hidden_reason, idea.updated_at = True, reason.strip(), now or timezone.now()
    idea.save(update_fields=["hidden", "hidden_reason", "updated_at"])
    return idea
