"""Reads for scoring and segments (manager API)."""

from __future__ import annotations

from django.db.models import QuerySet

from loyalty.segmentation.models import CustomerMetrics, ScoringModel, ScoringRun, Segment, SegmentMember, SegmentRun
from loyalty.segmentation.services.segments import segment_member_values


def scoring_model_list() -> QuerySet[ScoringModel]:
    return ScoringModel.objects.order_by("name", "-version")


def scoring_run_list() -> QuerySet[ScoringRun]:
    return ScoringRun.objects.order_by("-id")


def metrics_list(*, run: ScoringRun) -> QuerySet[CustomerMetrics]:
    return CustomerMetrics.objects.filter(scoring_run=run).order_by("revenue_rank")


def segment_list() -> QuerySet[Segment]:
    return Segment.objects.order_by("name")


def segment_run_list(*, segment: Segment | None = None) -> QuerySet[SegmentRun]:
    runs = SegmentRun.objects.order_by("-id")
    return runs.filter(segment=segment) if segment is not None else runs


def segment_member_list(*, run: SegmentRun) -> QuerySet[SegmentMember]:
    """The run's members by rank, each with `values` (the values that qualified it; see SegmentMember)."""
    return (
        SegmentMember.objects.filter(run=run)
        .select_related("customer")
        .annotate(values=segment_member_values(run))
        .order_by("rank")
    )
