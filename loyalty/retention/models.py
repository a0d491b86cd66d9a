from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class RetentionOutcome(models.Model):
    """An observed retention fact for a membership (both groups). Append-only: a correction is a new row
    whose `supersedes` points at the row it replaces."""

    class Outcome(models.TextChoices):
        RETAINED = "retained", "Retained"
        CHURNED = "churned", "Churned"
        DOWNGRADED_PLAN = "downgraded_plan", "Downgraded plan"
        UPGRADED_PLAN = "upgraded_plan", "Upgraded plan"

    class Source(models.TextChoices):
        INGEST = "ingest", "Ingestion API"
        IMPORT = "import", "File import"
        DERIVED = "derived", "Derived from customer status"
        MANUAL = "manual", "Manual"

    membership = models.ForeignKey("loyalty.Membership", on_delete=models.PROTECT, related_name="outcomes")
    observed_at = models.DateTimeField()
    outcome = models.CharField(max_length=20, choices=Outcome.choices)
    source = models.CharField(max_length=16, choices=Source.choices)
    revenue_change = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    intends_to_stay = models.BooleanField(null=True, blank=True)
    external_id = models.CharField(max_length=64, null=True, blank=True, unique=True)
    supersedes = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="superseded_by"
    )
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["observed_at", "id"]
        indexes = [models.Index(fields=["membership", "observed_at"], name="outcome_membership_time_idx")]
        constraints = [
            models.CheckConstraint(condition=~Q(supersedes=models.F("id")), name="outcome_not_self_superseding")
        ]


class ImpactReport(models.Model):
    """One computation of a programme's impact report (for large programmes, run by a Celery task)."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    programme = models.ForeignKey("loyalty.Programme", on_delete=models.CASCADE, related_name="impact_reports")
    as_of = models.DateTimeField(help_text="Observations up to this moment; members still active are censored here.")
    horizons = models.JSONField(default=list, help_text="Horizons in months, e.g. [3, 6, 12].")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    progress = models.PositiveSmallIntegerField(default=0, help_text="0-100")
    result = models.JSONField(null=True, blank=True)
    timings = models.JSONField(default=dict, blank=True, help_text="Seconds per step.")
    error = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Requeues by the run reconciler (core.runs).")
    heartbeat_at = models.DateTimeField(
        default=timezone.now, help_text="Last sign of life: queued (pending) or a beat of its worker (running)."
    )

    class Meta:
        ordering = ["-id"]
        constraints = [models.CheckConstraint(condition=Q(progress__lte=100), name="impactreport_progress_range")]

    def __str__(self) -> str:
        return f"Impact report {self.pk} ({self.status})"
