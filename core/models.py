from django.db import models


class IdempotencyRecord(models.Model):
    """An Idempotency-Key of a creating POST: claimed (committed, `in_progress`) before the action runs, then
    `completed` with the answer to replay on retries. A claim whose request died expires at `claimed_until`
    and can be taken over."""

    class State(models.TextChoices):
        IN_PROGRESS = "in_progress"
        COMPLETED = "completed"

    owner = models.CharField(max_length=64, help_text="Who sent it: user:<id> or apikey:<id>.")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of method, path and canonical body.")
    state = models.CharField(max_length=16, choices=State.choices, default=State.COMPLETED)
    claim_token = models.CharField(max_length=32, blank=True, help_text="Which request holds the claim.")
    claimed_until = models.DateTimeField(null=True, blank=True, help_text="When an unfinished claim expires.")
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    secret_withheld = models.BooleanField(
        default=False, help_text="The answer carried a secret, which is not stored: a replay is refused (409)."
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["owner", "key"], name="idempotency_owner_key_unique")]

    def __str__(self) -> str:
        return f"{self.owner} {self.key}"


class OutboxMessage(models.Model):
    """A task that a transaction decided, recorded in that same transaction (core.outbox.enqueue) and published
    to the broker by the relay: right after commit, and by the periodic relay for whatever is still unpublished
    (broker down, process died between commit and publish). Published rows are purged after a retention."""

    task_name = models.CharField(max_length=200)
    args = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0, help_text="Failed publication attempts.")
    last_error = models.TextField(blank=True, default="")
    last_attempt_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            # The relay's scan: unpublished rows, oldest first (a partial index stays tiny).
            models.Index(fields=["id"], name="outbox_unpublished_idx", condition=models.Q(published_at__isnull=True)),
            models.Index(fields=["published_at"], name="outbox_published_at_idx"),
        ]

    def __str__(self) -> str:
        state = "published" if self.published_at else "unpublished"
        return f"{self.task_name}{tuple(self.args)} ({state})"
