from __future__ import annotations

from datetime import datetime

from django import template
from django.utils import timezone

from console.access import user_areas

register = template.Library()


@register.simple_tag(takes_context=True)
def console_areas(context) -> list[dict]:
    user = context.get("user")
    return user_areas(user) if user is not None and user.is_authenticated else []


@register.filter
def clock(seconds: int | None) -> str:
    """Seconds left on an SLA as '2 h 05 min left' or '1 h 10 min overdue'."""
    if seconds is None:
        return ""
    word = "left" if seconds >= 0 else "overdue"
    minutes = abs(int(seconds)) // 60
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    text = (f"{days} d " if days else "") + f"{hours} h {minutes:02d} min"
    return f"{text} {word}"


@register.filter
def until(due: datetime | None) -> str:
    if due is None:
        return ""
    return clock(int((due - timezone.now()).total_seconds()))
