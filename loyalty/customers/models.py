from django.conf import settings
from django.db import models
from django.db.models import Q


class Channel(models.TextChoices):
    PHONE = "phone", "Phone line"
    ONLINE = "online", "Online / website"
    STORE = "store", "Store"
    EMAIL = "email", "Email"
    SOCIAL = "social", "Social media"
    APP = "app", "App"
    # Programme channels, recorded by concierge and events through loyalty services.
    CONCIERGE = "concierge", "Concierge"
    EVENT = "event", "Event"


CONTACT_CHANNELS = [Channel.PHONE, Channel.ONLINE, Channel.STORE, Channel.EMAIL, Channel.SOCIAL, Channel.APP]


class Customer(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        CHURNED = "churned", "Churned"

    external_id = models.CharField(max_length=64, unique=True, help_text="The CRM's id.")
    name = models.CharField(max_length=200)
    email = models.EmailField(blank=True, default="")
    phone = models.CharField(max_length=32, blank=True, default="")
    birth_year = models.PositiveSmallIntegerField(null=True, blank=True)
    region = models.CharField(max_length=64, blank=True, default="")
    attributes = models.JSONField(default=dict, blank=True, help_text="Segment attributes from the CRM.")
    joined_at = models.DateTimeField(help_text="Customer since (tenure starts here).")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    churned_at = models.DateTimeField(null=True, blank=True)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="customer"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["region"], name="customer_region_idx"),
            models.Index(fields=["status"], name="customer_status_idx"),
            models.Index(fields=["email"], name="customer_email_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status="active", churned_at__isnull=True) | Q(status="churned", churned_at__isnull=False),
                name="customer_churned_at_matches_status",
            ),
            models.CheckConstraint(
                condition=Q(birth_year__isnull=True) | Q(birth_year__gte=1900, birth_year__lte=2100),
                name="customer_birth_year_range",
            ),
            models.CheckConstraint(condition=~Q(external_id=""), name="customer_external_id_not_empty"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.external_id})"


class RevenueEntry(models.Model):
    """A billing line, top-up or purchase: revenue attributed to a customer for a period (month)."""

    # No single-column index on customer: (customer, period) below serves lookups by customer.
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="revenue_entries", db_index=False)
    period = models.DateField(help_text="Day the revenue belongs to (billing lines use the month's first day).")
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    currency = models.CharField(max_length=3, default="EUR")
    kind = models.CharField(max_length=32, blank=True, default="")
    # Unique through a constraint (not unique=True): no extra LIKE-pattern index on PostgreSQL.
    external_id = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    # The ingest batch that wrote the row on PostgreSQL's fast path (loyalty.segmentation's RollupBatch): its
    # rollup cells are applied after commit, found by the batch's id range and this column. No index and no
    # constraint: nothing else reads it, and every insert would pay for them.
    ingest_batch_id = models.BigIntegerField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["customer", "period"], name="revenue_customer_period_idx")]
        constraints = [
            models.UniqueConstraint(fields=["external_id"], name="revenue_external_id_unique"),
            models.CheckConstraint(condition=Q(amount__gte=0), name="revenue_amount_non_negative"),
            models.CheckConstraint(condition=~Q(external_id=""), name="revenue_external_id_not_empty"),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id} {self.period} {self.amount} {self.currency}"


class Interaction(models.Model):
    """One contact of a customer on a channel. Tens of millions of rows: read set-based, by customer and time."""

    # Indexes cost on every one of tens of millions of inserts: (customer, occurred_at) serves lookups by
    # customer, so no single-column customer index; external_id is unique through a constraint (no LIKE index).
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="interactions", db_index=False)
    channel = models.CharField(max_length=16, choices=Channel.choices)
    occurred_at = models.DateTimeField()
    kind = models.CharField(max_length=64, blank=True, default="")
    external_id = models.CharField(max_length=64)
    # The ingest batch that wrote the row on PostgreSQL's fast path (loyalty.segmentation's RollupBatch): its
    # rollup cells are applied after commit, found by the batch's id range and this column. No index and no
    # constraint: nothing else reads it, and every insert would pay for them.
    ingest_batch_id = models.BigIntegerField(null=True, blank=True, editable=False)

    class Meta:
        indexes = [models.Index(fields=["customer", "occurred_at"], name="interaction_customer_time_idx")]
        constraints = [
            models.UniqueConstraint(fields=["external_id"], name="interaction_external_id_unique"),
            models.CheckConstraint(condition=Q(channel__in=Channel.values), name="interaction_channel_valid"),
            models.CheckConstraint(condition=~Q(external_id=""), name="interaction_external_id_not_empty"),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id} {self.channel} {self.occurred_at:%Y-%m-%d}"
