from django.db import models
from django.db.models import Q


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
