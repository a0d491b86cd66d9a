"""Concierge: member requests, their conversation, the append-only audit and the monthly allowance counter.

Data and constraints only; every write goes through `concierge.services`."""

from django.conf import settings
from django.db import models
from django.db.models import Q


class Category(models.TextChoices):
    DINING = "dining", "Dining"
    TRAVEL = "travel", "Travel"
    TICKETS = "tickets", "Tickets"
    GIFTS = "gifts", "Gifts"
    TELCO_SUPPORT = "telco_support", "Telco support"
    OTHER = "other", "Other"


class Visibility(models.TextChoices):
    PRIVATE = "private", "Private"
    PUBLIC = "public", "Public"


class RequestStatus(models.TextChoices):
    NEW = "new", "New"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    IN_PROGRESS = "in_progress", "In progress"
    AWAITING_MEMBER = "awaiting_member", "Awaiting member"
    FULFILLED = "fulfilled", "Fulfilled"
    DECLINED = "declined", "Declined"
    CANCELLED = "cancelled", "Cancelled"


OPEN_STATUSES = (
    RequestStatus.NEW,
    RequestStatus.ACKNOWLEDGED,
    RequestStatus.IN_PROGRESS,
    RequestStatus.AWAITING_MEMBER,
)
RESOLVED_STATUSES = (RequestStatus.FULFILLED, RequestStatus.DECLINED)
CLOSED_STATUSES = (*RESOLVED_STATUSES, RequestStatus.CANCELLED)


class ConciergeRequest(models.Model):
    """A member's request to the concierge. Priority and SLA due times come from the member's tier at creation.

    `due_at` is the SLA deadline that matters now (first response while nobody has answered, then resolution;
    null once closed): the agent queue is ordered on it."""

    membership = models.ForeignKey("loyalty.Membership", on_delete=models.PROTECT, related_name="concierge_requests")
    tier = models.ForeignKey(
        "loyalty.Tier", null=True, blank=True, on_delete=models.PROTECT, related_name="+", help_text="Tier at creation."
    )
    category = models.CharField(max_length=20, choices=Category.choices)
    subject = models.CharField(max_length=200)
    details = models.TextField(blank=True, default="")
    visibility = models.CharField(max_length=10, choices=Visibility.choices, default=Visibility.PRIVATE)
    status = models.CharField(max_length=20, choices=RequestStatus.choices, default=RequestStatus.NEW)
    priority = models.PositiveSmallIntegerField(help_text="Higher is more urgent. Tier rank, raised on escalation.")
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    first_response_due_at = models.DateTimeField()
    resolution_due_at = models.DateTimeField()
    due_at = models.DateTimeField(null=True, blank=True, help_text="Next SLA deadline (null when closed).")
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="concierge_assigned"
    )
    first_response_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True, help_text="When fulfilled or declined.")
    closed_at = models.DateTimeField(null=True, blank=True)
    first_response_breached = models.BooleanField(default=False)
    resolution_breached = models.BooleanField(default=False)
    escalated_at = models.DateTimeField(null=True, blank=True)
    rating = models.PositiveSmallIntegerField(null=True, blank=True)
    rating_comment = models.TextField(blank=True, default="")
    rated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(category__in=Category.values), name="concierge_category_valid"),
            models.CheckConstraint(condition=Q(visibility__in=Visibility.values), name="concierge_visibility_valid"),
            models.CheckConstraint(condition=Q(status__in=RequestStatus.values), name="concierge_status_valid"),
            models.CheckConstraint(
                condition=Q(rating__isnull=True) | Q(rating__gte=1, rating__lte=5), name="concierge_rating_range"
            ),
            models.CheckConstraint(
                condition=Q(rating__isnull=True) | Q(status__in=[s.value for s in RESOLVED_STATUSES]),
                name="concierge_rating_only_when_resolved",
            ),
            models.CheckConstraint(condition=~Q(subject=""), name="concierge_subject_not_empty"),
        ]
        indexes = [
            models.Index(fields=["status", "due_at"], name="concierge_queue_idx"),
            models.Index(fields=["membership", "created_at"], name="concierge_membership_idx"),
            models.Index(fields=["visibility", "status", "resolved_at"], name="concierge_feed_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.subject}"


class RequestMessage(models.Model):
    """One message of a request's conversation. Internal notes are for agents only."""

    class AuthorKind(models.TextChoices):
        MEMBER = "member", "Member"
        AGENT = "agent", "Agent"

    request = models.ForeignKey(ConciergeRequest, on_delete=models.CASCADE, related_name="messages")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    author_kind = models.CharField(max_length=10, choices=AuthorKind.choices)
    body = models.TextField()
    internal = models.BooleanField(default=False)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(internal=False) | Q(author_kind="agent"), name="concierge_internal_only_agents"
            ),
            models.CheckConstraint(condition=~Q(body=""), name="concierge_message_body_not_empty"),
        ]
        indexes = [models.Index(fields=["request", "created_at"], name="concierge_message_request_idx")]


class RequestEvent(models.Model):
    """Append-only audit: who did what to a request, old and new values, when. Never updated or deleted."""

    class Action(models.TextChoices):
        CREATED = "created", "Created"
        STATUS_CHANGED = "status_changed", "Status changed"
        ASSIGNED = "assigned", "Assigned"
        UNASSIGNED = "unassigned", "Unassigned"
        MEMBER_REPLIED = "member_replied", "Member replied"
        AGENT_REPLIED = "agent_replied", "Agent replied"
        NOTE_ADDED = "note_added", "Internal note added"
        FIRST_RESPONSE = "first_response", "First response"
        RATED = "rated", "Rated"
        BREACHED = "breached", "SLA breached"
        PRIORITY_CHANGED = "priority_changed", "Priority changed"

    request = models.ForeignKey(ConciergeRequest, on_delete=models.PROTECT, related_name="events")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Null for the system (SLA checks).",
    )
    action = models.CharField(max_length=20, choices=Action.choices)
    field = models.CharField(max_length=40, blank=True, default="")
    old_value = models.CharField(max_length=255, blank=True, default="")
    new_value = models.CharField(max_length=255, blank=True, default="")
    note = models.CharField(max_length=255, blank=True, default="")
    at = models.DateTimeField()

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["request", "at"], name="concierge_event_request_idx")]

    def __str__(self) -> str:
        return f"#{self.request_id} {self.action} {self.old_value}->{self.new_value}"


class AllowanceUsage(models.Model):
    """Requests created by a membership in a calendar month (UTC). Incremented with a conditional UPDATE
    (`used < allowance`), so concurrent creates never exceed the tier's allowance."""

    membership = models.ForeignKey("loyalty.Membership", on_delete=models.CASCADE, related_name="+")
    period = models.DateField(help_text="First day of the month.")
    used = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["membership", "period"], name="concierge_allowance_unique"),
        ]


class NotificationSent(models.Model):
    """One row per notification sent, so a notification task that runs twice sends once."""

    key = models.CharField(max_length=100, unique=True)
    sent_at = models.DateTimeField(auto_now_add=True)
