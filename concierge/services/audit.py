"""The append-only audit: every change to a request writes one RequestEvent through here."""

from __future__ import annotations

from datetime import datetime

from concierge.models import ConciergeRequest, RequestEvent


def event_write(
    *,
    request: ConciergeRequest,
    actor,
    action: str,
    at: datetime,
    field: str = "",
    old: object = "",
    new: object = "",
    note: str = "",
) -> RequestEvent:
    return RequestEvent.objects.create(
        request=request,
        actor=actor,
        action=action,
        field=field,
        old_value="" if old is None else str(old)[:255],
        new_value="" if new is None else str(new)[:255],
        note=note[:255],
        at=at,
    )
