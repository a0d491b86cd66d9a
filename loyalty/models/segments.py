from django.conf import settings
from django.db import models
from django.db.models import Q

from loyalty.models.scoring import RunStatus


class Segment(models.Model):
    """A rule over metrics and attributes (JSON tree of all/any/not), plus an optional top N by a metric."""

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True, default="")
    rule = models.JSONField(default=dict, blank=True)
    top_n = models.PositiveIntegerField(null=True, blank=True)
    top_by = models.CharField(max_length=64, blank=True, default="", help_text="Metric for top N, highest first.")
    tie_break = models.CharField(
        max_length=64, blank=True, default="", help_text="Second metric for top N (highest first); then customer id."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(top_n__isnull=True) | (Q(top_n__gte=1) & ~Q(top_by="")),
                name="segment_top_n_needs_metric",
            )
        ]

    def __str__(self) -> str:
        return self.name


class SegmentRun(models.Model):
    segment = models.ForeignKey(Segment, on_delete=models.PROTECT, related_name="runs")
    scoring_run = models.ForeignKey("loyalty.ScoringRun", on_delete=models.PROTECT, related_name="segment_runs")
    rule_snapshot = models.JSONField(default=dict, help_text="The segment's rule and top N as run.")
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.PENDING)
    progress = models.PositiveSmallIntegerField(default=0)
    candidates_count = models.PositiveIntegerField(default=0, help_text="Customers matching the rule.")
    member_count = models.PositiveIntegerField(default=0)
    timings = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.segment} run {self.pk}"


class SegmentMember(models.Model):
    # Written by INSERT ... SELECT (100,000 rows per run): no database FK constraints, which PostgreSQL checks
    # row by row; Django still cascades deletes. The unique (run, customer) index serves lookups by run.
    run = models.ForeignKey(
        SegmentRun, on_delete=models.CASCADE, related_name="members", db_index=False, db_constraint=False
    )
    customer = models.ForeignKey(
        "loyalty.Customer", on_delete=models.CASCADE, related_name="segment_memberships", db_constraint=False
    )
    rank = models.PositiveIntegerField()
    values = models.JSONField(default=dict, help_text="The metric and attribute values that qualified it.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "customer"], name="segmentmember_run_customer_unique")]
        indexes = [models.Index(fields=["run", "rank"], name="segmentmember_run_rank_idx")]
