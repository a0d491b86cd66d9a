from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


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
    state_as_of_day = models.IntegerField(
        null=True, blank=True, editable=False, help_text="Operational: day number its ScoringState is rolled to."
    )
    state_revenue_as_of_day = models.IntegerField(
        null=True, blank=True, editable=False, help_text="Operational: day number the state's revenue is as of."
    )

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
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Requeues by the run reconciler (core.runs).")
    heartbeat_at = models.DateTimeField(
        default=timezone.now, help_text="Last sign of life: queued (pending) or a beat of its worker (running)."
    )

    class Meta:
        ordering = ["-id"]
        constraints = [models.CheckConstraint(condition=Q(progress__lte=100), name="scoringrun_progress_range")]

    def __str__(self) -> str:
        return f"Scoring run {self.pk} ({self.status})"


class CustomerMetrics(models.Model):
    """The metrics of one customer in one scoring run. Written set-based (INSERT ... SELECT).

    Keyed by (scoring run, customer): no surrogate id, so one index per row instead of two. On PostgreSQL the
    table is partitioned by scoring run (migration 0003): a run loads its 1,000,000 rows into a table of its own
    without any index, builds the primary key by one sort and attaches the table as its partition; deleting a
    run drops its partition. Rows written through the ORM (tests, admin) land in the default partition."""

    pk = models.CompositePrimaryKey("scoring_run_id", "customer_id")
    # No database FK constraints (PostgreSQL would check them row by row at commit: seconds per run); Django
    # still cascades deletes of runs and customers (on_delete is emulated by the ORM).
    scoring_run = models.ForeignKey(
        ScoringRun, on_delete=models.CASCADE, related_name="metrics", db_index=False, db_constraint=False
    )
    customer = models.ForeignKey(
        "loyalty.Customer", on_delete=models.CASCADE, related_name="metrics", db_index=False, db_constraint=False
    )
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
            models.CheckConstraint(
                condition=Q(engagement_score__gte=0, engagement_score__lte=100), name="metrics_score_range"
            ),
        ]


class InteractionDayRollup(models.Model):
    """Interactions per customer, day and channel, kept current as interactions are ingested or recorded
    (loyalty.segmentation.services.rollups: deltas of the written rows on PostgreSQL, a recompute of the affected cells
    elsewhere). Scoring reads these, never raw rows.
    Derived tables (rollups, state) have no database FK constraints: they are written set-based from rows of
    existing customers, and PostgreSQL would check a constraint row by row (21 s for 440,000 rollup rows)."""

    pk = models.CompositePrimaryKey("customer_id", "day", "channel")  # no surrogate id: one index less to write
    customer = models.ForeignKey(
        "loyalty.Customer", on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    day = models.DateField()
    channel = models.CharField(max_length=16)
    count = models.PositiveIntegerField()

    class Meta:
        indexes = [models.Index(fields=["day"], name="interaction_rollup_day_idx")]


class RevenueDayRollup(models.Model):
    """Revenue per customer and day in integer minor units (cents), kept current like InteractionDayRollup."""

    pk = models.CompositePrimaryKey("customer_id", "day")
    customer = models.ForeignKey(
        "loyalty.Customer", on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    day = models.DateField()
    amount_minor = models.BigIntegerField()

    class Meta:
        indexes = [models.Index(fields=["day"], name="revenue_rollup_day_idx")]


class RollupBatch(models.Model):
    """Raw rows that one ingest transaction wrote on PostgreSQL's fast path (every row new) and whose rollup cells
    (and scoring-state stale marks) are applied after commit: by the task `loyalty.tasks.rollups_apply_batch`
    (enqueued through the outbox in the ingest transaction), or by whoever reads the rollups first
    (`rollups_apply_pending`: a scoring run). The batch's rows are those with `first_id <= id <= last_id` and
    `ingest_batch_id` = this id. `applied_at` is set in the transaction that applies the cells, under a row lock,
    so a batch is counted once however often its task runs."""

    class Kind(models.TextChoices):
        INTERACTIONS = "interactions"
        REVENUE = "revenue"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    first_id = models.BigIntegerField()
    last_id = models.BigIntegerField()
    rows = models.PositiveIntegerField()
    created_at = models.DateTimeField(default=timezone.now)
    applied_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["id"], condition=Q(applied_at__isnull=True), name="rollup_batch_pending_idx")]

    def __str__(self) -> str:
        return f"{self.kind} batch {self.pk} ({self.rows} rows, {'applied' if self.applied_at else 'pending'})"


class ScoringState(models.Model):
    """Per scoring model and customer: the incremental state a run rolls forward instead of rescanning history.

    Days are integer day numbers (days since 1970-01-01), weeks are day // 7. As of day `as_of_day`:
    `decayed` = sum of w(channel) * count * 2^(-(as_of_day - day) / half_life) over all interactions so far;
    `week_mask` bit k = the customer was active in week (as_of_day // 7 - k); `last_<channel>` = last day seen;
    `revenue_minor` = revenue of days in (as_of_day - revenue_window_days, as_of_day].
    `stale` = rollups of days <= as_of_day changed since (late or corrected data): the next run recomputes the
    row from the rollups instead of rolling it forward."""

    pk = models.CompositePrimaryKey("scoring_model_id", "customer_id")
    scoring_model = models.ForeignKey(
        ScoringModel, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    customer = models.ForeignKey(
        "loyalty.Customer", on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    as_of_day = models.IntegerField()
    decayed = models.FloatField(default=0.0)
    week_mask = models.BigIntegerField(default=0)
    last_day = models.IntegerField(null=True)
    last_phone = models.IntegerField(null=True)
    last_online = models.IntegerField(null=True)
    last_store = models.IntegerField(null=True)
    last_email = models.IntegerField(null=True)
    last_social = models.IntegerField(null=True)
    last_app = models.IntegerField(null=True)
    revenue_minor = models.BigIntegerField(default=0)
    stale = models.BooleanField(default=False)

    class Meta:
        indexes = [models.Index(fields=["customer"], name="scoringstate_customer_idx")]


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
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Requeues by the run reconciler (core.runs).")
    heartbeat_at = models.DateTimeField(
        default=timezone.now, help_text="Last sign of life: queued (pending) or a beat of its worker (running)."
    )
    compact_values = models.BooleanField(
        default=False,
        db_default=False,  # code that does not know the field (an older release) still inserts runs
        help_text="Its members store only the values that the scoring run's metrics do not hold (customer "
        "attributes, influence); the metric values are read back from the metrics (SegmentMember).",
    )

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.segment} run {self.pk}"


class SegmentMember(models.Model):
    """A customer in a segment run. Written by INSERT ... SELECT (100,000 rows per run).

    Keyed by (run, customer), no surrogate id and no index by customer alone (lookups are by run). On PostgreSQL
    the table is partitioned by segment run (migration 0007), like CustomerMetrics: a run loads a table of its
    own without any index, builds its key and the (run, rank) index by sorting and attaches the table (half
    the time of inserting into the indexed table); deleting runs drops their partitions. Rows written through
    the ORM land in the default partition. No database FK constraints (checked row by row); Django still
    cascades deletes.

    The values that qualified the member (`values` to every reader) are read through
    `segments.segment_member_values(run)`, never from the column alone: a run written with `compact_values`
    stores in the column (`stored_values`, database column "values") only what can change after the run
    (customer attributes, influence); its metric values are the scoring run's CustomerMetrics, immutable and
    kept as long as the segment run (a scoring run with segment runs cannot be deleted), and are read back with
    the same JSON expression that built them, so every answer is the same text as when they were stored."""

    pk = models.CompositePrimaryKey("run_id", "customer_id")
    run = models.ForeignKey(
        SegmentRun, on_delete=models.CASCADE, related_name="members", db_index=False, db_constraint=False
    )
    customer = models.ForeignKey(
        "loyalty.Customer",
        on_delete=models.CASCADE,
        related_name="segment_memberships",
        db_index=False,
        db_constraint=False,
    )
    rank = models.PositiveIntegerField()
    stored_values = models.JSONField(
        default=dict,
        db_column="values",
        help_text="The values that qualified it; of a compact run only those the metrics do not hold.",
    )

    class Meta:
        indexes = [models.Index(fields=["run", "rank"], name="segmentmember_run_rank_idx")]


class CustomerInfluence(models.Model):
    """A customer's influence in the community, for segment rules (field `influence`). Loyalty owns the table;
    the community app computes it and writes it through loyalty.segmentation.services.influence, so loyalty
    never imports community. Customers without a row have influence 0."""

    customer = models.OneToOneField(
        "loyalty.Customer", primary_key=True, on_delete=models.CASCADE, related_name="influence"
    )
    score = models.FloatField(help_text="Referral credit plus weighted votes received.")
    referral_credit = models.FloatField(default=0, help_text="Converted referrals, discounted per generation.")
    votes_received = models.PositiveIntegerField(default=0)
    computed_at = models.DateTimeField()
