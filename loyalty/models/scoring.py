from django.conf import settings
from django.db import models
from django.db.models import Q


class ScoringModel(models.Model):
    """How revenue and engagement are scored. Immutable once a run used it (`locked_at`): change = new version."""

    name = models.CharField(max_length=100)
    version = models.PositiveIntegerField(default=1)
    description = models.TextField(blank=True, default="")
    revenue_window_days = models.PositiveIntegerField(default=365)
    engagement_window_days = models.PositiveIntegerField(default=90)
    channel_weights = models.JSONField(default=dict, help_text="Channel to weight, e.g. {'social': 1.3}.")
    breadth_weight = models.FloatField(default=0.3)
    frequency_weight = models.FloatField(default=0.3)
    recency_weight = models.FloatField(default=0.4)
    half_life_days = models.FloatField(default=90.0)
    created_at = models.DateTimeField(auto_now_add=True)
    locked_at = models.DateTimeField(null=True, blank=True, help_text="Set by the first run; then immutable.")

    class Meta:
        ordering = ["name", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="scoringmodel_name_version_unique"),
            models.CheckConstraint(
                condition=Q(revenue_window_days__gte=1, engagement_window_days__gte=7, half_life_days__gt=0),
                name="scoringmodel_windows_positive",
            ),
            models.CheckConstraint(
                condition=Q(breadth_weight__gte=0, frequency_weight__gte=0, recency_weight__gte=0),
                name="scoringmodel_weights_non_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"


class RunStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class ScoringRun(models.Model):
    """One computation of CustomerMetrics for every customer, as of a moment."""

    scoring_model = models.ForeignKey(ScoringModel, on_delete=models.PROTECT, related_name="runs")
    as_of = models.DateTimeField()
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.PENDING)
    progress = models.PositiveSmallIntegerField(default=0, help_text="0-100")
    customers_scored = models.PositiveIntegerField(default=0)
    timings = models.JSONField(default=dict, blank=True, help_text="Seconds per step.")
    error = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [models.CheckConstraint(condition=Q(progress__lte=100), name="scoringrun_progress_range")]

    def __str__(self) -> str:
        return f"Scoring run {self.pk} ({self.status})"


class CustomerMetrics(models.Model):
    """The metrics of one customer in one scoring run. Written set-based (INSERT ... SELECT)."""

    scoring_run = models.ForeignKey(ScoringRun, on_delete=models.CASCADE, related_name="metrics")
    customer = models.ForeignKey("loyalty.Customer", on_delete=models.CASCADE, related_name="metrics")
    revenue_minor = models.BigIntegerField(help_text="Revenue in the window, minor units.")
    revenue_rank = models.PositiveIntegerField()
    revenue_percentile = models.FloatField(help_text="0-100, 100 = top.")
    engagement_score = models.FloatField(help_text="0-100.")
    engagement_percentile = models.FloatField(help_text="0-100, 100 = top.")
    channels_used = models.PositiveSmallIntegerField()
    active_weeks = models.PositiveSmallIntegerField()
    days_since_last = models.PositiveIntegerField(null=True, blank=True)
    decayed_activity = models.FloatField(default=0.0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["scoring_run", "customer"], name="metrics_run_customer_unique"),
            models.CheckConstraint(
                condition=Q(engagement_score__gte=0, engagement_score__lte=100), name="metrics_score_range"
            ),
        ]
