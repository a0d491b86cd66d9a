from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from loyalty.segmentation.models import RunStatus


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
    expected_retention = models.FloatField(
        default=0.89, help_text="Expected yearly retention without the programme (for the detectable-effect estimate)."
    )
    last_evaluated_at = models.DateTimeField(null=True, blank=True, help_text="Last tier re-evaluation.")
    primary_metric = models.CharField(
        max_length=32,
        choices=[("retention", "Retention at the primary horizon (intention to treat)")],
        default="retention",
        help_text="The impact report's one confirmatory question; every other comparison is exploratory.",
    )
    primary_horizon_months = models.PositiveSmallIntegerField(
        default=12, help_text="Months after enrolment at which the primary question is decided (1 to 60)."
    )
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
            models.CheckConstraint(
                condition=Q(primary_horizon_months__gte=1, primary_horizon_months__lte=60),
                name="programme_primary_horizon_range",
            ),
            models.CheckConstraint(condition=Q(grace_period_days__gte=1), name="programme_grace_positive"),
            models.CheckConstraint(
                condition=Q(expected_retention__gt=0, expected_retention__lt=1), name="programme_retention_range"
            ),
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

    # No single-column indexes: (programme, customer) and (customer, status) below cover these lookups, and
    # every index costs time when enrolment inserts 100,000 rows.
    programme = models.ForeignKey(Programme, on_delete=models.PROTECT, related_name="memberships", db_index=False)
    customer = models.ForeignKey(
        "loyalty.Customer", on_delete=models.PROTECT, related_name="memberships", db_index=False
    )
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
    invited_at = models.DateTimeField(
        null=True, blank=True, help_text="When the enrolment invitation email went out (treatment only)."
    )
    # Baseline snapshot for the impact report's breakdowns: values fixed at enrolment (the customer record holds
    # only the current ones). Written by the set-based enrolment INSERT.
    region_at_enrolment = models.CharField(
        max_length=64, blank=True, default="", db_default="", help_text="The customer's region when enrolled."
    )
    age_at_enrolment = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Enrolment year minus birth year (null: birth year unknown then)."
    )

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


class Enrolment(models.Model):
    """One enrolment of a segment run into a programme (at most one per programme and run: re-enrolling the
    same run changes nothing). `result` holds counts per group and tier, balance and power figures."""

    programme = models.ForeignKey(Programme, on_delete=models.CASCADE, related_name="enrolments")
    segment_run = models.ForeignKey("loyalty.SegmentRun", on_delete=models.PROTECT, related_name="enrolments")
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.PENDING)
    progress = models.PositiveSmallIntegerField(default=0)
    enrolled_count = models.PositiveIntegerField(default=0, help_text="Memberships created by this enrolment.")
    skipped_count = models.PositiveIntegerField(default=0, help_text="Run members already in the programme.")
    result = models.JSONField(default=dict, blank=True)
    timings = models.JSONField(default=dict, blank=True)
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
        constraints = [
            models.UniqueConstraint(fields=["programme", "segment_run"], name="enrolment_programme_run_unique"),
            models.CheckConstraint(condition=Q(progress__lte=100), name="enrolment_progress_range"),
        ]

    def __str__(self) -> str:
        return f"Enrolment of run {self.segment_run_id} into {self.programme_id} ({self.status})"


class MemberNotification(models.Model):
    """Outbox of member emails (enrolment invitation, upgrade, downgrade warning, downgrade). Rows are written
    set-based in the same transaction as the change; a task sends them after commit and stamps `sent_at`."""

    class Kind(models.TextChoices):
        ENROLMENT = "enrolment", "Enrolment invitation"
        UPGRADE = "upgrade", "Upgrade"
        DOWNGRADE_WARNING = "downgrade_warning", "Downgrade warning"
        DOWNGRADE = "downgrade", "Downgrade"

    membership = models.ForeignKey(Membership, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    dedupe_key = models.CharField(max_length=64, help_text="Makes writing the same notification twice a no-op.")
    tier_change = models.ForeignKey(TierChange, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["membership", "kind", "dedupe_key"], name="membernotification_dedupe_unique"
            )
        ]
        indexes = [models.Index(fields=["sent_at", "id"], name="membernotification_unsent_idx")]
