"""Polls and news posted by managers; members answer a poll once, before it closes."""

from __future__ import annotations

from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from community.models import Poll, PollAnswer, PollOption
from community.services.common import social_interaction
from core.errors import Conflict, NotFound, ValidationFailed
from loyalty.programmes.selectors.members import member_membership

MAX_OPTIONS = 10


@transaction.atomic
def poll_create(
    *,
    kind: str,
    title: str,
    body: str = "",
    options: list[str],
    closes_at: datetime,
    created_by=None,
    now: datetime | None = None,
) -> Poll:
    """A poll needs 2 to 10 distinct options; news may have none (it is there to be discussed)."""
    now = now or timezone.now()
    labels = [label.strip() for label in options]
    errors: dict[str, list[str]] = {}
    if kind == Poll.Kind.POLL and not 2 <= len(labels) <= MAX_OPTIONS:
        errors["options"] = [f"A poll has 2 to {MAX_OPTIONS} options."]
    elif len(labels) > MAX_OPTIONS:
        errors["options"] = [f"At most {MAX_OPTIONS} options."]
    elif len({label.lower() for label in labels}) != len(labels) or not all(labels):
        errors["options"] = ["Options are distinct and not blank."]
    if closes_at <= now:
        errors["closes_at"] = ["Must be in the future."]
    if errors:
        raise ValidationFailed("The poll is not valid.", fields=errors)
    poll = Poll.objects.create(
        kind=kind, title=title.strip(), body=body, closes_at=closes_at, created_by=created_by, created_at=now
    )
    PollOption.objects.bulk_create(
        [PollOption(poll=poll, position=i, label=label) for i, label in enumerate(labels, start=1)]
    )
    return poll


@transaction.atomic
def poll_answer(*, user, poll_id: int, option_id: int, now: datetime | None = None) -> PollAnswer:
    """Answer once (409 `already_answered`), before closing (409 `poll_closed`)."""
    now = now or timezone.now()
    membership = member_membership(user)
    poll = Poll.objects.filter(pk=poll_id, hidden=False).first()
    if poll is None:
        raise NotFound("Poll not found.", code="poll_not_found")
    if poll.kind != Poll.Kind.POLL:
        raise Conflict("News takes comments, not answers.", code="not_a_poll")
    if now >= poll.closes_at:
        raise Conflict("This poll is closed.", code="poll_closed", fields={"closes_at": poll.closes_at.isoformat()})
    option = PollOption.objects.filter(pk=option_id, poll=poll).first()
    if option is None:
        raise ValidationFailed("Not an option of this poll.", fields={"option_id": ["Unknown option."]})
    try:
        with transaction.atomic():
            answer = PollAnswer.objects.create(
                poll=poll, option=option, customer_id=membership.customer_id, created_at=now
            )
    except IntegrityError:
        raise Conflict("You have already answered this poll.", code="already_answered") from None
    PollOption.objects.filter(pk=option.pk).update(answer_count=F("answer_count") + 1)
    social_interaction(
        customer_id=membership.customer_id, kind="poll_answered", at=now, ref=f"poll-{poll.pk}-{membership.customer_id}"
    )
    return answer


@transaction.atomic
def poll_hide(*, poll_id: int, actor, reason: str) -> Poll:
    if not reason.strip():
        raise ValidationFailed("Give a reason.", fields={"reason": ["Must not be blank."]})
    poll = Poll.objects.select_for_update().filter(pk=poll_id).first()
    if poll is None:
        raise NotFound("Poll not found.", code="poll_not_found")
    if poll.hidden:
        raise Conflict("The poll is already hidden.", code="already_hidden")
    poll.hidden, poll.hidden_reason = True, reason.strip()
    poll.save(update_fields=["hidden", "hidden_reason"])
    return poll
