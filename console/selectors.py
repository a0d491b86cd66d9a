"""Reads only the console needs (small summaries beside the apps' own selectors)."""

from __future__ import annotations

from django.db.models import Count

from concierge.models import ConciergeRequest, RequestStatus


def request_status_counts() -> list[dict]:
    """How many requests are in each status, every status listed (one query)."""
    counts = dict(ConciergeRequest.objects.order_by().values_list("status").annotate(n=Count("id")))
    return [{"status": value, "label": label, "count": counts.get(value, 0)} for value, label in RequestStatus.choices]
