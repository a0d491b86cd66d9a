from django.conf import settings
from django.db import models
from django.db.models import F, Q


class Programme(models.Model):
    """A tiered programme with a randomly held-out control group."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        CLOSED = "closed", "Closed"

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True, default="")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    holdout_percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=10,
        help_text="Share of enrolled customers held out as control.",
    )
    seed = models.CharField(max_length=64, help_text="Seed of the reproducible treatment/control split.")
    qualifying_metric = models.CharField(
        max_length=64, default="revenue_percentile", help_text="CustomerMetrics field tiers are judged on."
    )
    evaluation_cadence_days = models.PositiveIntegerField(default=30)
    grace_period_days = models.PositiveIntegerField(default=60)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(holdout_percent__gte=0, holdout_percent__lte=50), name="programme_holdout_range"
            ),
            models.CheckConstraint(condition=Q(evaluation_cadence_days__gte=1), name="programme_cadence_positive"),
        ]

    def __str__(self) -> str:
        return self.name


class Tier(models.Model):
    """A level of a programme. Higher rank = better. Benefits live here."""

    programme = models.ForeignKey(Programme, on_delete=models.CASCADE, related_name="tiers")
    rank = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=64)
    threshold = models.FloatField(help_text="Minimum value of the programme's qualifying metric.")
    first_response_sla_hours = models.PositiveIntegerField(default=24)
    resolution_sla_hours = models.PositiveIntegerField(default=72)
    monthly_request_allowance = models.PositiveIntegerField(default=5)
    early_access_hours = models.PositiveIntegerField(default=0)
    guests_per_booking = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["programme_id", "rank"]
        constraints = [
            models.UniqueConstraint(fields=["programme", "rank"], name="tier_programme_rank_unique"),
            models.UniqueConstraint(fields=["programme", "name"], name="tier_programme_name_unique"),
            models.CheckConstraint(
                condition=Q(resolution_sla_hours__gte=F("first_response_sla_hours")),
                name="tier_resolution_after_first_response",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.programme.name} / {self.name}"


class Membership(models.Model):
    """A customer's place in a programme: treatment (a member with a tier) or control (held out, no benefits,
    a shadow tier for reports only). The group is decided once at enrolment and never changes."""

    class Group(models.TextChoices):
        TREATMENT = "treatment", "Treatment"
        CONTROL = "control", "Control"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        HOLDOUT = "holdout", "Holdout"
        ENDED = "ended", "Ended"

    programme = models.ForeignKey(Programme, on_delete=models.PROTECT, related_name="memberships")
    customer = models.ForeignKey("loyalty.Customer", on_delete=models.PROTECT, related_name="memberships")
    group = models.CharField(max_length=16, choices=Group.choices)
    tier = models.ForeignKey(Tier, null=True, blank=True, on_delete=models.PROTECT, related_name="memberships")
    shadow_tier = models.ForeignKey(
        Tier, null=True, blank=True, on_delete=models.PROTECT, related_name="shadow_memberships"
    )
    status = models.CharField(max_length=16, choices=Status.choices)
    enrolled_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    source_run = models.ForeignKey(
        "loyalty.SegmentRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="memberships"
    )
    assignment_seed = models.CharField(max_length=64, help_text="Programme seed used for the group split.")
    assignment_bucket = models.FloatField(help_text="Stable hash of seed and customer id in [0, 100).")
    below_threshold_since = models.DateField(null=True, blank=True, help_text="Start of the downgrade grace.")
    override_tier = models.ForeignKey(
        Tier, null=True, blank=True, on_delete=models.PROTECT, related_name="override_memberships"
    )
    override_expires_at = models.DateTimeField(null=True, blank=True)
    override_reason = models.CharField(max_length=255, blank=True, default="")
    last_evaluated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["programme", "customer"], name="membership_programme_customer_unique"),
            models.CheckConstraint(
                condition=Q(group="treatment", status__in=["active", "ended"], shadow_tier__isnull=True)
                | Q(
                    group="control",
                    status__in=["holdout", "ended"],
                    tier__isnull=True,
                    override_tier__isnull=True,
                ),
                name="membership_group_status_consistent",
            ),
            models.CheckConstraint(
                condition=Q(override_tier__isnull=True) | Q(override_expires_at__isnull=False),
                name="membership_override_has_expiry",
            ),
        ]
        indexes = [
            models.Index(fields=["programme", "group", "status"], name="membership_prog_group_idx"),
            models.Index(fields=["customer", "status"], name="membership_customer_status_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id} in {self.programme_id} ({self.group})"


class TierChange(models.Model):
    class Reason(models.TextChoices):
        ENROLMENT = "enrolment", "Enrolment"
        UPGRADE = "upgrade", "Upgrade"
        DOWNGRADE = "downgrade", "Downgrade"
        OVERRIDE = "override", "Override"
        OVERRIDE_EXPIRED = "override_expired", "Override expired"
        ENDED = "ended", "Membership ended"

    membership = models.ForeignKey(Membership, on_delete=models.CASCADE, related_name="tier_changes")
    from_tier = models.ForeignKey(Tier, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    to_tier = models.ForeignKey(Tier, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    reason = models.CharField(max_length=20, choices=Reason.choices)
    note = models.CharField(max_length=255, blank=True, default="")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    at = models.DateTimeField()

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["membership", "at"], name="tierchange_membership_at_idx")]
