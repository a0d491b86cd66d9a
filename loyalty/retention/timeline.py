"""Per-member timeline for managers, assembled from registered sources.

A source is `fn(customer_id: int) -> list[{"at": datetime, "kind": str, "summary": str, "ref": str | None}]`.
Loyalty registers its own (enrolments, tier changes, retention outcomes, churn). Concierge and events register
theirs from their AppConfig.ready() with `register_timeline_source(fn)`; loyalty never imports them.
Each source should answer with a constant number of queries.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

TimelineEntry = dict[str, Any]
TimelineSource = Callable[[int], list[TimelineEntry]]

_SOURCES: list[TimelineSource] = []


def register_timeline_source(fn: TimelineSource) -> TimelineSource:
    """Add a source (idempotent: registering the same function twice keeps one). Usable as a decorator."""
    if fn not in _SOURCES:
        _SOURCES.append(fn)
    return fn


def unregister_timeline_source(fn: TimelineSource) -> None:
    if fn in _SOURCES:
        _SOURCES.remove(fn)


def timeline_sources() -> list[TimelineSource]:
    return list(_SOURCES)


def timeline_for_customer(customer_id: int) -> list[TimelineEntry]:
    """Every source's entries for this customer, newest first."""
    entries: list[TimelineEntry] = []
    for source in _SOURCES:
        for entry in source(customer_id) or []:
            entries.append(
                {
                    "at": entry["at"],
                    "kind": str(entry["kind"]),
                    "summary": str(entry["summary"]),
                    "ref": None if entry.get("ref") is None else str(entry["ref"]),
                }
            )
    entries.sort(key=lambda e: (e["at"], e["kind"]), reverse=True)
    return entries


# --- loyalty's own sources ----------------------------------------------------------------------------------


@register_timeline_source
def _memberships(customer_id: int) -> list[TimelineEntry]:
    from loyalty.customers.models import Customer
    from loyalty.programmes.models import Membership

    entries: list[TimelineEntry] = []
    for m in Membership.objects.filter(customer_id=customer_id).select_related("programme"):
        group = "member (treatment)" if m.group == Membership.Group.TREATMENT else "held out (control)"
        entries.append(
            {
                "at": m.enrolled_at,
                "kind": "enrolment",
                "summary": f"Enrolled in {m.programme.name} as {group}.",
                "ref": f"membership:{m.pk}",
            }
        )
        if m.ended_at:
            entries.append(
                {
                    "at": m.ended_at,
                    "kind": "membership_ended",
                    "summary": f"Membership of {m.programme.name} ended.",
                    "ref": f"membership:{m.pk}",
                }
            )
    churned_at = Customer.objects.filter(pk=customer_id).values_list("churned_at", flat=True).first()
    if churned_at:
        entries.append(
            {"at": churned_at, "kind": "churned", "summary": "Customer churned.", "ref": f"customer:{customer_id}"}
        )
    return entries


@register_timeline_source
def _tier_changes(customer_id: int) -> list[TimelineEntry]:
    from loyalty.programmes.models import TierChange

    changes = TierChange.objects.filter(membership__customer_id=customer_id).select_related(
        "from_tier", "to_tier", "membership__programme"
    )
    return [
        {
            "at": c.at,
            "kind": "tier_change",
            "summary": f"{c.membership.programme.name}: {c.from_tier.name if c.from_tier else '-'} -> "
            f"{c.to_tier.name if c.to_tier else '-'} ({c.get_reason_display().lower()})"
            + (f": {c.note}" if c.note else ""),
            "ref": f"tier_change:{c.pk}",
        }
        for c in changes
    ]


@register_timeline_source
def _outcomes(customer_id: int) -> list[TimelineEntry]:
    from loyalty.retention.models import RetentionOutcome

    outcomes = RetentionOutcome.objects.filter(membership__customer_id=customer_id).select_related(
        "membership__programme", "superseded_by"
    )
    entries = []
    for o in outcomes:
        superseded = hasattr(o, "superseded_by")
        summary = f"{o.membership.programme.name}: outcome {o.get_outcome_display().lower()} ({o.source})"
        if o.supersedes_id:
            summary += f", corrects outcome {o.supersedes_id}"
        if superseded:
            summary += f"; superseded by outcome {o.superseded_by.pk}"
        entries.append({"at": o.observed_at, "kind": "outcome", "summary": summary, "ref": f"outcome:{o.pk}"})
    return entries
