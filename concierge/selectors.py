"""Concierge reads: member lists and details, the agent queue, the public feed, SLA status and figures."""

from __future__ import annotations

import statistics
from collections import defaultdict
from datetime import datetime

from django.db import connection
from django.db.models import Count, F, Prefetch, Q, QuerySet
from django.utils import timezone

from accounts.models import Role, User
from concierge.models import (
    OPEN_STATUSES,
    RESOLVED_STATUSES,
    Category,
    ConciergeRequest,
    RequestEvent,
    RequestMessage,
    RequestStatus,
    Visibility,
)
from core.errors import NotFound


def member_requests(*, user, status: str | None = None) -> QuerySet[ConciergeRequest]:
    """The user's own requests (also from ended memberships), newest first."""
    qs = ConciergeRequest.objects.filter(membership__customer__user=user)
    if status:
        qs = qs.filter(status=status)
    return qs.order_by("-created_at", "-id")


def member_request_get(*, user, request_id: int) -> ConciergeRequest:
    """One of the user's requests with its public conversation only; anything else is a 404."""
    public = RequestMessage.objects.filter(internal=False).select_related("author").order_by("created_at", "id")
    request = (
        member_requests(user=user)
        .prefetch_related(Prefetch("messages", queryset=public, to_attr="conversation"))
        .filter(pk=request_id)
        .first()
    )
    if request is None:
        raise NotFound("Concierge request not found.", code="request_not_found")
    return request


def agent_queue(
    *,
    status: str | None = None,
    category: str | None = None,
    breached: bool | None = None,
    assignee_id: int | None = None,
    unassigned: bool = False,
) -> QuerySet[ConciergeRequest]:
    """The agents' queue: open requests unless a status is asked for, the nearest SLA deadline first, then
    the higher priority."""
    qs = ConciergeRequest.objects.select_related("assignee", "tier", "membership__customer")
    qs = qs.filter(status=status) if status else qs.filter(status__in=OPEN_STATUSES)
    if category:
        qs = qs.filter(category=category)
    if breached is not None:
        any_breach = Q(first_response_breached=True) | Q(resolution_breached=True)
        qs = qs.filter(any_breach) if breached else qs.exclude(any_breach)
    if unassigned:
        qs = qs.filter(assignee__isnull=True)
    elif assignee_id is not None:
        qs = qs.filter(assignee_id=assignee_id)
    return qs.order_by(F("due_at").asc(nulls_last=True), "-priority", "created_at", "id")


def agent_directory(*, q: str | None = None) -> QuerySet[User]:
    """Active concierge agents, by name then email, each with `open_assigned` (open requests assigned to them),
    for choosing whom to assign a request to. `q` matches part of the name or the email. One query."""
    qs = User.objects.filter(is_active=True, groups__name=Role.CONCIERGE_AGENT)
    if q:
        q = q.strip()
        qs = qs.filter(Q(first_name__icontains=q) | Q(last_name__icontains=q) | Q(email__icontains=q))
    return qs.annotate(
        open_assigned=Count("concierge_assigned", filter=Q(concierge_assigned__status__in=OPEN_STATUSES))
    ).order_by("first_name", "last_name", "email", "id")


def agent_request_get(*, request_id: int) -> ConciergeRequest:
    """Any request, with the whole conversation including internal notes (agents only)."""
    messages = RequestMessage.objects.select_related("author").order_by("created_at", "id")
    request = (
        ConciergeRequest.objects.select_related("assignee", "tier", "membership__customer")
        .prefetch_related(Prefetch("messages", queryset=messages, to_attr="conversation"))
        .filter(pk=request_id)
        .first()
    )
    if request is None:
        raise NotFound("Concierge request not found.", code="request_not_found")
    return request


def request_events(*, request_id: int) -> QuerySet[RequestEvent]:
    if not ConciergeRequest.objects.filter(pk=request_id).exists():
        raise NotFound("Concierge request not found.", code="request_not_found")
    return RequestEvent.objects.filter(request_id=request_id).order_by("at", "id")


def member_display_name(full_name: str) -> str:
    """'Ada Lovelace' -> 'Ada L.': the public feed never shows more."""
    parts = full_name.split()
    if not parts:
        return "A member"
    if len(parts) == 1:
        return parts[0]
    return f"{parts[0]} {parts[-1][0].upper()}."


def public_feed() -> QuerySet[ConciergeRequest]:
    """Fulfilled requests their members made public, most recently fulfilled first."""
    return (
        ConciergeRequest.objects.filter(visibility=Visibility.PUBLIC, status=RequestStatus.FULFILLED)
        .select_related("membership__customer")
        .order_by("-resolved_at", "-id")
    )


def _sla_part(due: datetime, done: datetime | None, breached: bool, now: datetime, open_: bool) -> dict:
    met = None if done is None else done <= due
    return {
        "due_at": due,
        "done_at": done,
        "met": met,
        "breached": breached or (done is not None and done > due) or (done is None and open_ and now > due),
        "seconds_left": int((due - now).total_seconds()) if done is None and open_ else None,
    }


def sla_status(*, request: ConciergeRequest, now: datetime | None = None) -> dict:
    """Where a request stands against its SLAs, right now."""
    now = now or timezone.now()
    open_ = request.status in OPEN_STATUSES
    return {
        "request_id": request.pk,
        "status": request.status,
        "priority": request.priority,
        "escalated_at": request.escalated_at,
        "first_response": _sla_part(
            request.first_response_due_at, request.first_response_at, request.first_response_breached, now, open_
        ),
        "resolution": _sla_part(
            request.resolution_due_at,
            request.resolved_at,
            request.resolution_breached,
            now,
            open_,
        ),
    }


def _median(values: list[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def sla_report(*, since: datetime | None = None, until: datetime | None = None) -> list[dict]:
    """SLA figures per tier and category for requests created in [since, until): share of first responses and
    resolutions within their SLA, median times in seconds, breaches. Aggregated in the database on PostgreSQL
    (percentile_cont); SQLite has no median aggregate, so it aggregates durations in Python there."""
    filters, params = [], []
    if since is not None:
        filters.append("r.created_at >= %s")
        params.append(since)
    if until is not None:
        filters.append("r.created_at < %s")
        params.append(until)
    where = ("WHERE " + " AND ".join(filters)) if filters else ""
    resolved = ", ".join(f"'{s.value}'" for s in RESOLVED_STATUSES)
    table = ConciergeRequest._meta.db_table
    tier_table = "loyalty_tier"
    if connection.vendor == "postgresql":
        sql = f"""
            SELECT t.name, t.rank, r.category, count(*),
                   count(r.first_response_at),
                   count(*) FILTER (WHERE r.first_response_at <= r.first_response_due_at),
                   count(*) FILTER (WHERE r.status IN ({resolved})),
                   count(*) FILTER (WHERE r.status IN ({resolved}) AND r.resolved_at <= r.resolution_due_at),
                   count(*) FILTER (WHERE r.first_response_breached),
                   count(*) FILTER (WHERE r.resolution_breached),
                   percentile_cont(0.5) WITHIN GROUP (
                       ORDER BY extract(epoch FROM r.first_response_at - r.created_at)),
                   percentile_cont(0.5) WITHIN GROUP (
                       ORDER BY CASE WHEN r.status IN ({resolved})
                                THEN extract(epoch FROM r.resolved_at - r.created_at) END)
            FROM {table} r LEFT JOIN {tier_table} t ON t.id = r.tier_id
            {where}
            GROUP BY t.name, t.rank, r.category
            ORDER BY t.rank NULLS LAST, r.category
        """
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        return [_report_row(*row) for row in rows]
    groups: dict[tuple, dict] = defaultdict(lambda: {"counts": [0] * 7, "fr": [], "res": []})
    qs = ConciergeRequest.objects.all()
    if since is not None:
        qs = qs.filter(created_at__gte=since)
    if until is not None:
        qs = qs.filter(created_at__lt=until)
    for r in qs.values_list(
        "tier__name",
        "tier__rank",
        "category",
        "status",
        "created_at",
        "first_response_at",
        "first_response_due_at",
        "resolved_at",
        "resolution_due_at",
        "first_response_breached",
        "resolution_breached",
    ).iterator():
        name, rank, category, status, created, fr_at, fr_due, res_at, res_due, fr_b, res_b = r
        g = groups[(name, rank, category)]
        c = g["counts"]
        c[0] += 1
        if fr_at is not None:
            c[1] += 1
            c[2] += fr_at <= fr_due
            g["fr"].append((fr_at - created).total_seconds())
        if status in RESOLVED_STATUSES:
            c[3] += 1
            c[4] += res_at <= res_due
            g["res"].append((res_at - created).total_seconds())
        c[5] += bool(fr_b)
        c[6] += bool(res_b)
    out = []
    for (name, rank, category), g in sorted(
        groups.items(), key=lambda item: (item[0][1] is None, item[0][1] or 0, item[0][2])
    ):
        out.append(_report_row(name, rank, category, *g["counts"], _median(g["fr"]), _median(g["res"])))
    return out


def _report_row(
    tier, rank, category, total, responded, fr_met, resolved, res_met, fr_breached, res_breached, fr_median, res_median
) -> dict:
    return {
        "tier": tier,
        "tier_rank": rank,
        "category": category,
        "requests": total,
        "responded": responded,
        "first_response_met": fr_met,
        "first_response_met_share": round(fr_met / total, 4) if total else None,
        "resolved": resolved,
        "resolution_met": res_met,
        "resolution_met_share": round(res_met / resolved, 4) if resolved else None,
        "first_response_breached": fr_breached,
        "resolution_breached": res_breached,
        "median_first_response_seconds": None if fr_median is None else round(float(fr_median), 1),
        "median_resolution_seconds": None if res_median is None else round(float(res_median), 1),
    }


def timeline_entries(*, customer_id: int) -> list[dict]:
    """The customer's concierge requests for a manager's customer timeline, newest first."""
    labels = dict(Category.choices)
    status_labels = dict(RequestStatus.choices)
    rows = (
        ConciergeRequest.objects.filter(membership__customer_id=customer_id)
        .order_by("-created_at", "-id")
        .values_list("id", "created_at", "category", "subject", "status")
    )
    return [
        {
            "at": created_at,
            "kind": "concierge_request",
            "summary": f"{labels.get(category, category)}: {subject} ({status_labels.get(status, status).lower()})",
            "ref": request_id,
        }
        for request_id, created_at, category, subject, status in rows
    ]
