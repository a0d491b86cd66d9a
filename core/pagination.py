from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from ninja import Field, Schema
from ninja.pagination import PaginationBase


class Page(PaginationBase):
    """Limit/offset pagination with bounds on both, so that no input reaches the database out of range.

    Answers {"items": [...], "count": N}: the page query, and a COUNT query only when the page does not tell
    the count itself. A page shorter than the limit ends the list, so the count is offset + its length (the
    common case of a member's own short lists: one query instead of two, and a count consistent with the
    items); a full page, or an empty page past the start, needs the COUNT.
    """

    class Input(Schema):
        limit: int = Field(50, ge=1, le=settings.API_PAGE_MAX_LIMIT, description="Page size.")
        offset: int = Field(0, ge=0, le=settings.API_PAGE_MAX_OFFSET, description="Items to skip.")

    class Output(Schema):
        items: list[Any]
        count: int

    items_attribute = "items"

    def paginate_queryset(self, queryset: QuerySet, pagination: Input, **params: Any) -> Any:
        offset, limit = pagination.offset, pagination.limit
        items = list(queryset[offset : offset + limit])
        if len(items) < limit and (items or offset == 0):
            return {"items": items, "count": offset + len(items)}
        return {"items": items, "count": self._items_count(queryset)}
