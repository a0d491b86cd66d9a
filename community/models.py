"""Community data: ambassador campaigns and referral chains, idea rounds with votes and funding, polls, comments.

Constraints carry the invariants that concurrency must not break: one vote per member per idea, one answer per
member per poll, one attribution per customer, a round's funded total never above its budget."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q


class Campaign(models.Model):
    """An ambassador campaign of a programme: nominees, a random held-out share, referral codes in a window."""

    programme = models.ForeignKey("loyalty.Programme", on_delete=models.PROTECT, related_name="+")
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True, default="")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    holdout_percent = models.DecimalField(
        max_digits=5, decimal_places=2, default=0, help_text="Share of nominees held out (they get nothing)."
    )
    max_ambassadors = models.PositiveIntegerField(help_text="Cap on nominees (ambassadors and held out).")
    open_to_members = models.BooleanField(
        default=False, help_text="Every active treatment member of the programme may have a referral code."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-starts_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(ends_at__gt=F("starts_at")), name="campaign_window_valid"),
            models.CheckConstraint(
                condition=Q(holdout_percent__gte=0, holdout_percent__lte=50), name="campaign_holdout_range"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def assignment_seed(self) -> str:
        """The programme's seed, salted by the campaign: reproducible, and independent of the programme split."""
        return f"{self.programme.seed}:campaign:{self.pk}"


class Nominee(models.Model):
    """A member nominated for a campaign: an ambassador, or held out (gets nothing, measures the effect)."""

    class Group(models.TextChoices):
        AMBASSADOR = "ambassador", "Ambassador"
        HELD_OUT = "held_out", "Held out"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="nominees")
    customer = models.ForeignKey("loyalty.Customer", on_delete=models.PROTECT, related_name="+")
    membership = models.ForeignKey("loyalty.Membership", on_delete=models.PROTECT, related_name="+")
    group = models.CharField(max_length=16, choices=Group.choices)
    assignment_bucket = models.PositiveIntegerField(help_text="Hash of the campaign seed and customer, 0..999999.")
    source_run = models.ForeignKey(
        "loyalty.SegmentRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    rank = models.PositiveIntegerField(default=0, help_text="Rank in the segment run it came from.")
    nominated_at = models.DateTimeField()
    received = models.CharField(max_length=200, blank=True, default="", help_text="What the ambassador got.")
    received_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["campaign_id", "rank", "id"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "customer"], name="nominee_campaign_customer_unique"),
            models.CheckConstraint(
                condition=Q(group="ambassador") | Q(received="", received_at__isnull=True),
                name="nominee_held_out_receives_nothing",
            ),
        ]
        indexes = [models.Index(fields=["customer"], name="nominee_customer_idx")]


class ReferralCode(models.Model):
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="codes")
    customer = models.ForeignKey("loyalty.Customer", on_delete=models.PROTECT, related_name="+")
    code = models.CharField(max_length=16, unique=True)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "customer"], name="referralcode_campaign_customer_unique")
        ]


class Referral(models.Model):
    """One attribution: `referred` came through `referrer`'s code. One per referred customer, ever."""

    class Source(models.TextChoices):
        INGESTION = "ingestion", "Ingestion"
        SIGNUP = "signup", "Sign-up"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="referrals")
    code = models.ForeignKey(ReferralCode, on_delete=models.PROTECT, related_name="referrals")
    referrer = models.ForeignKey("loyalty.Customer", on_delete=models.PROTECT, related_name="+", db_index=False)
    referred = models.OneToOneField("loyalty.Customer", on_delete=models.PROTECT, related_name="community_referral")
    root = models.ForeignKey(
        "loyalty.Customer", on_delete=models.PROTECT, related_name="+", help_text="The chain's first referrer."
    )
    generation = models.PositiveSmallIntegerField(help_text="1 for the root's own referrals, then +1 per step.")
    source = models.CharField(max_length=16, choices=Source.choices)
    attributed_at = models.DateTimeField()
    attributed_on = models.DateField(help_text="UTC day of attribution: revenue from this day counts.")
    converted_at = models.DateTimeField(null=True, blank=True, help_text="First revenue after attribution.")

    class Meta:
        ordering = ["attributed_at", "id"]
        constraints = [
            models.CheckConstraint(condition=~Q(referrer=F("referred")), name="referral_no_self_referral"),
            models.CheckConstraint(condition=Q(generation__gte=1), name="referral_generation_positive"),
        ]
        indexes = [
            models.Index(fields=["campaign", "generation"], name="referral_campaign_gen_idx"),
            models.Index(fields=["referrer"], name="referral_referrer_idx"),
            models.Index(fields=["root"], name="referral_root_idx"),
        ]


class Round(models.Model):
    """An idea round: members post and vote between start and end; managers fund from the budget."""

    title = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    budget = models.DecimalField(max_digits=14, decimal_places=2)
    funded_total = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    currency = models.CharField(max_length=3, default="EUR")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-starts_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(ends_at__gt=F("starts_at")), name="round_window_valid"),
            models.CheckConstraint(condition=Q(budget__gte=0), name="round_budget_non_negative"),
            models.CheckConstraint(
                condition=Q(funded_total__gte=0, funded_total__lte=F("budget")), name="round_funded_within_budget"
            ),
        ]


class IdeaStatus(models.TextChoices):
    SUBMITTED = "submitted", "Submitted"
    OPEN = "open", "Open"
    SHORTLISTED = "shortlisted", "Shortlisted"
    FUNDED = "funded", "Funded"
    DELIVERED = "delivered", "Delivered"
    DECLINED = "declined", "Declined"


# Statuses everyone sees; a submitted idea is seen by its author and managers only.
PUBLIC_IDEA_STATUSES = [s for s in IdeaStatus.values if s != IdeaStatus.SUBMITTED]
VOTABLE_IDEA_STATUSES = [IdeaStatus.OPEN, IdeaStatus.SHORTLISTED]


class IdeaCategory(models.TextChoices):
    SERVICE = "service", "New service"
    BENEFIT = "benefit", "Benefit"
    EVENT = "event", "Event"
    APP = "app", "App and website"
    OTHER = "other", "Other"


class Idea(models.Model):
    round = models.ForeignKey(Round, on_delete=models.CASCADE, related_name="ideas")
    author = models.ForeignKey("loyalty.Customer", on_delete=models.PROTECT, related_name="+")
    title = models.CharField(max_length=120)
    body = models.TextField()
    category = models.CharField(max_length=16, choices=IdeaCategory.choices)
    status = models.CharField(max_length=16, choices=IdeaStatus.choices, default=IdeaStatus.SUBMITTED)
    vote_count = models.PositiveIntegerField(default=0)
    funded_amount = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    hidden = models.BooleanField(default=False)
    hidden_reason = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["-vote_count", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(funded_amount__isnull=True) | Q(funded_amount__gt=0), name="idea_funded_amount_positive"
            ),
            models.CheckConstraint(condition=Q(hidden=False) | ~Q(hidden_reason=""), name="idea_hidden_has_reason"),
        ]
        indexes = [
            models.Index(fields=["round", "hidden", "-vote_count", "-id"], name="idea_round_votes_idx"),
            models.Index(fields=["author"], name="idea_author_idx"),
        ]


class IdeaStatusChange(models.Model):
    """Append-only history of an idea's status; each row is told to the author once."""

    idea = models.ForeignKey(Idea, on_delete=models.CASCADE, related_name="status_changes")
    from_status = models.CharField(max_length=16, choices=IdeaStatus.choices)
    to_status = models.CharField(max_length=16, choices=IdeaStatus.choices)
    note = models.CharField(max_length=255, blank=True, default="")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    at = models.DateTimeField()

    class Meta:
        ordering = ["at", "id"]


class Vote(models.Model):
    idea = models.ForeignKey(Idea, on_delete=models.CASCADE, related_name="votes", db_index=False)
    customer = models.ForeignKey("loyalty.Customer", on_delete=models.PROTECT, related_name="+", db_index=False)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["idea", "customer"], name="vote_one_per_member")]
        indexes = [models.Index(fields=["customer"], name="vote_customer_idx")]


class Poll(models.Model):
    class Kind(models.TextChoices):
        POLL = "poll", "Poll"
        NEWS = "news", "News"

    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.POLL)
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True, default="")
    closes_at = models.DateTimeField()
    hidden = models.BooleanField(default=False)
    hidden_reason = models.CharField(max_length=255, blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]


class PollOption(models.Model):
    poll = models.ForeignKey(Poll, on_delete=models.CASCADE, related_name="options")
    position = models.PositiveSmallIntegerField()
    label = models.CharField(max_length=120)
    answer_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["poll_id", "position"]
        constraints = [models.UniqueConstraint(fields=["poll", "position"], name="polloption_position_unique")]


class PollAnswer(models.Model):
    poll = models.ForeignKey(Poll, on_delete=models.CASCADE, related_name="answers", db_index=False)
    option = models.ForeignKey(PollOption, on_delete=models.CASCADE, related_name="answers")
    customer = models.ForeignKey("loyalty.Customer", on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["poll", "customer"], name="pollanswer_one_per_member")]


class Comment(models.Model):
    """A comment on an idea or on a poll (exactly one of the two)."""

    idea = models.ForeignKey(Idea, null=True, blank=True, on_delete=models.CASCADE, related_name="comments")
    poll = models.ForeignKey(Poll, null=True, blank=True, on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey("loyalty.Customer", on_delete=models.PROTECT, related_name="+")
    body = models.TextField()
    hidden = models.BooleanField(default=False)
    hidden_reason = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(idea__isnull=False, poll__isnull=True) | Q(idea__isnull=True, poll__isnull=False),
                name="comment_on_idea_or_poll",
            ),
        ]
        indexes = [models.Index(fields=["author", "created_at"], name="comment_author_time_idx")]


class NotificationSent(models.Model):
    """Emails already sent (key unique): a task that runs twice sends once."""

    key = models.CharField(max_length=100, unique=True)
    sent_at = models.DateTimeField(auto_now_add=True)
