from django.db import models


class IdempotencyRecord(models.Model):
    """The first answer to a creating POST sent with an Idempotency-Key, replayed on retries."""

    owner = models.CharField(max_length=64, help_text="Who sent it: user:<id> or apikey:<id>.")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of method, path and canonical body.")
    status_code = models.PositiveSmallIntegerField()
    response_body = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["owner", "key"], name="idempotency_owner_key_unique")]

    def __str__(self) -> str:
        return f"{self.owner} {self.key}"
