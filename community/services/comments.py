"""Comments on ideas and polls, with a posting limit, and their moderation."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from community.models import Comment, Idea, IdeaStatus, Poll
from community.services.common import COMMENTS_PER_HOUR, acting_member, limit_check, social_interaction
from core.errors import Conflict, NotFound, ValidationFailed


@transaction.atomic
def comment_post(
    *, user, body: str, idea_id: int | None = None, poll_id: int | None = None, now: datetime | None = None
) -> Comment:
    """A member comments on a visible idea or poll (closed polls and finished ideas keep their comments but
    take no new ones: 409)."""
    now = now or timezone.now()
    membership = acting_member(user)
    target: dict = {}
    if idea_id is not None:
        idea = Idea.objects.select_related("round").filter(pk=idea_id).first()
        if idea is None or idea.hidden or idea.status == IdeaStatus.SUBMITTED:
            raise NotFound("Idea not found.", code="idea_not_found")
        if idea.status in (IdeaStatus.DELIVERED, IdeaStatus.DECLINED) or now >= idea.round.ends_at:
            raise Conflict("This idea takes no more comments.", code="comments_closed")
        target["idea"] = idea
    else:
        poll = Poll.objects.filter(pk=poll_id).first()
        if poll is None or poll.hidden:
            raise NotFound("Poll not found.", code="poll_not_found")
        if now >= poll.closes_at:
            raise Conflict("This poll is closed.", code="poll_closed")
        target["poll"] = poll
    recent = Comment.objects.filter(author_id=membership.customer_id, created_at__gt=now - timedelta(hours=1)).count()
    limit_check(recent=recent, allowed=COMMENTS_PER_HOUR, what="comments", window=timedelta(hours=1), now=now)
    comment = Comment.objects.create(author_id=membership.customer_id, body=body.strip(), created_at=now, **target)
    social_interaction(customer_id=membership.customer_id, kind="comment_posted", at=now, ref=f"comment-{comment.pk}")
    return comment


@transaction.atomic
def comment_hide(*, comment_id: int, actor, reason: str) -> Comment:
    if not reason.strip():
        raise ValidationFailed("Give a reason.", fields={"reason": ["Must not be blank."]})
    comment = Comment.objects.select_for_update().filter(pk=comment_id).first()
    if comment is None:
        raise NotFound("Comment not found.", code="comment_not_found")
    if comment.hidden:
        raise Conflict("The comment is already hidden.", code="already_hidden")
    comment.hidden, comment.hidden_reason = True, reason.strip()
    comment.save(update_fields=["hidden", "hidden_reason"])
    return comment
