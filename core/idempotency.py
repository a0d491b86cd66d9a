"""Idempotency-Key for creating POSTs.

Same key + same request: the first answer is replayed and nothing is created twice.
Same key + a different request: 409 `idempotency_key_reused`.
The key row is written in the same transaction as the work, so a failed request leaves no key behind and
two concurrent requests with one key serialize on the unique constraint: the second replays the first.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from ninja import Header, Schema, Status

from core.errors import Conflict, ValidationFailed
from core.models import IdempotencyRecord

IdempotencyKeyHeader = Header(
    None,
    alias="Idempotency-Key",
    description="Optional. A retry with the same key and body returns the first answer and creates nothing.",
)


def _fingerprint(request, payload: Any) -> str:
    if isinstance(payload, Schema):
        payload = payload.model_dump(mode="json")
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{request.method} {request.path}\n{canonical}".encode()).hexdigest()


def _owner(request) -> str:
    from accounts.models import ApiKey  # local: accounts imports core

    auth = getattr(request, "auth", None)
    if isinstance(auth, ApiKey):
        return f"apikey:{auth.pk}"
    user = auth if getattr(auth, "pk", None) else getattr(request, "user", None)
    if user is not None and getattr(user, "is_authenticated", False):
        return f"user:{user.pk}"
    return f"anon:{request.META.get('REMOTE_ADDR', '')}"


def run_idempotent(
    request,
    *,
    key: str | None,
    payload: Any,
    action: Callable[[], Any],
    out: type[Schema] | None = None,
    status: int = 201,
) -> Status:
    """Run `action` once per (caller, key). `out` serializes the action's result (else it must be a dict)."""

    def render(result: Any) -> Any:
        if out is None:
            return result
        if isinstance(result, list):
            return [out.from_orm(item).model_dump(mode="json") for item in result]
        return out.from_orm(result).model_dump(mode="json")

    if not key:
        with transaction.atomic():
            return Status(status, render(action()))
    if len(key) > 255 or not key.isprintable():
        raise ValidationFailed(
            "Idempotency-Key must be at most 255 printable characters.",
            code="invalid_idempotency_key",
            fields={"Idempotency-Key": ["At most 255 printable characters."]},
        )
    owner, fingerprint = _owner(request), _fingerprint(request, payload)

    def replay(record: IdempotencyRecord) -> Status:
        if record.fingerprint != fingerprint:
            raise Conflict(
                "This Idempotency-Key was already used with a different request.",
                code="idempotency_key_reused",
            )
        return Status(record.status_code, record.response_body)

    existing = IdempotencyRecord.objects.filter(owner=owner, key=key).first()
    if existing is not None:
        return replay(existing)
    try:
        with transaction.atomic():
            body = render(action())
            IdempotencyRecord.objects.create(
                owner=owner, key=key, fingerprint=fingerprint, status_code=status, response_body=body
            )
    except IntegrityError:
        # A concurrent request with the same key committed first (or the action hit its own constraint).
        existing = IdempotencyRecord.objects.filter(owner=owner, key=key).first()
        if existing is None:
            raise
        return replay(existing)
    return Status(status, body)


def idempotency_records_purge() -> int:
    cutoff = timezone.now() - timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS)
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted
