"""Idempotency-Key for creating POSTs, after the IETF draft "The Idempotency-Key HTTP Header Field".

- Same key + same request: the first answer is replayed and nothing is created twice.
- Same key + a different request: 409 `idempotency_key_reused`.
- The key is *claimed* first: a row in state `in_progress`, committed before the action runs. A concurrent
  duplicate finds the claim, waits up to IDEMPOTENCY_WAIT_SECONDS (polling) for the first request to finish
  and replays its answer; if the first is still running then, it answers 409 `idempotency_key_in_use` with
  `Retry-After`. It never runs the action, so it never gets the action's own error (`already_booked`, ...).
- The answer is stored in the same transaction as the action's effect: either both are committed or neither.
- Business errors (4xx `PremierError`s raised by the action: `event_full`, `allowance_exhausted`, ...) are
  recorded too and replayed: a retry with the same key gets the same answer the first request had (send a new
  key to try again). Invalid input (422: nothing was done; fix the body and retry with the same key), 5xx and
  unexpected exceptions release the claim instead, so a retry runs the action again.
- A request that dies holding a claim (killed worker) does not block its key forever: the claim expires after
  IDEMPOTENCY_CLAIM_SECONDS (longer than any request may run) and the next retry takes it over.
- Secrets are never stored: fields named in `secret_fields` are removed from the stored answer, and a replay
  is refused with 409 `idempotency_secret_not_replayable` naming the created object (it exists; its secret
  was shown once).
- `then` runs after the record committed, on the first execution only: work that must not be replayed (a
  call to Stripe; an answer that carries a secret). A replay answers the stored body and calls nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import time
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from ninja import Header, Schema, Status

from core.errors import Conflict, PremierError, ValidationFailed
from core.models import IdempotencyRecord

IdempotencyKeyHeader = Header(
    None,
    alias="Idempotency-Key",
    description="Optional. A retry with the same key and body returns the first answer and creates nothing. "
    "While the first request with this key is still running, a duplicate waits a few seconds for its answer, "
    "else gets 409 `idempotency_key_in_use` with `Retry-After`.",
)

_POLL_FIRST, _POLL_MAX = 0.05, 0.25


class ReplayedError(PremierError):
    """A recorded error answer, replayed with its own status."""

    def __init__(self, status_code: int, body: dict):
        super().__init__(body.get("detail"), code=body.get("code"), fields=body.get("fields") or {})
        self.status_code = status_code


class _ClaimLost(Exception):
    """Our claim expired and another request took the key over meanwhile."""


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


def _replay(record: IdempotencyRecord, fingerprint: str) -> Status:
    if record.fingerprint != fingerprint:
        raise Conflict("This Idempotency-Key was already used with a different request.", code="idempotency_key_reused")
    body = record.response_body
    if record.secret_withheld:
        created = body.get("id") if isinstance(body, dict) else None
        raise Conflict(
            "The first request with this Idempotency-Key succeeded, but its answer held a secret that is shown "
            "only once and is not kept for replays. Use the created object as it is, or revoke it and create a "
            "new one with a new key.",
            code="idempotency_secret_not_replayable",
            fields={"id": [str(created)]} if created is not None else {},
        )
    if record.status_code is not None and record.status_code >= 400:
        raise ReplayedError(record.status_code, body or {})
    return Status(record.status_code, body)


def _claim(owner: str, key: str, fingerprint: str) -> tuple[IdempotencyRecord, str] | Status:
    """Claim (owner, key) for this request, committed before the action runs. Returns the claimed record and
    our token, or the replayed answer of the request that holds (or held) the key."""
    deadline = time.monotonic() + settings.IDEMPOTENCY_WAIT_SECONDS
    poll = _POLL_FIRST
    while True:
        now = timezone.now()
        token = secrets.token_hex(16)
        claim_until = now + timedelta(seconds=settings.IDEMPOTENCY_CLAIM_SECONDS)
        try:
            with transaction.atomic():
                record = IdempotencyRecord.objects.create(
                    owner=owner,
                    key=key,
                    fingerprint=fingerprint,
                    state=IdempotencyRecord.State.IN_PROGRESS,
                    claim_token=token,
                    claimed_until=claim_until,
                )
            return record, token
        except IntegrityError:
            pass
        existing = IdempotencyRecord.objects.filter(owner=owner, key=key).first()
        if existing is None:  # released meanwhile: claim it again
            continue
        if existing.fingerprint != fingerprint or existing.state == IdempotencyRecord.State.COMPLETED:
            return _replay(existing, fingerprint)
        if existing.claimed_until is not None and existing.claimed_until < now:
            # The request that claimed it died: take the claim over (one taker wins the conditional UPDATE).
            taken = IdempotencyRecord.objects.filter(
                pk=existing.pk, state=IdempotencyRecord.State.IN_PROGRESS, claim_token=existing.claim_token
            ).update(claim_token=token, claimed_until=claim_until)
            if taken:
                existing.claim_token, existing.claimed_until = token, claim_until
                return existing, token
            continue
        if time.monotonic() >= deadline:
            raise Conflict(
                "A request with this Idempotency-Key is still being processed. Retry shortly to get its answer.",
                code="idempotency_key_in_use",
                retry_after=settings.IDEMPOTENCY_RETRY_AFTER_SECONDS,
            )
        time.sleep(poll)
        poll = min(poll * 2, _POLL_MAX)


def _complete(record: IdempotencyRecord, token: str, *, status: int, body: Any, secret_withheld: bool) -> None:
    done = IdempotencyRecord.objects.filter(
        pk=record.pk, state=IdempotencyRecord.State.IN_PROGRESS, claim_token=token
    ).update(
        state=IdempotencyRecord.State.COMPLETED,
        status_code=status,
        response_body=body,
        secret_withheld=secret_withheld,
        claimed_until=None,
    )
    if not done:
        raise _ClaimLost


def _release(record: IdempotencyRecord, token: str) -> None:
    IdempotencyRecord.objects.filter(
        pk=record.pk, state=IdempotencyRecord.State.IN_PROGRESS, claim_token=token
    ).delete()


def run_idempotent(
    request,
    *,
    key: str | None,
    payload: Any,
    action: Callable[[], Any],
    out: type[Schema] | None = None,
    status: int = 201,
    then: Callable[[Any], Any] | None = None,
    secret_fields: Iterable[str] = (),
) -> Status:
    """Run `action` once per (caller, key), in a transaction. `out` serializes the action's result (else it
    must be JSON-ready). `then(body)`, if given, runs after commit on the first execution only and returns the
    answer sent (not stored). `secret_fields` are top-level fields of the answer never stored (a replay is
    then refused with 409 `idempotency_secret_not_replayable`)."""

    def render(result: Any) -> Any:
        if out is None:
            return result
        if isinstance(result, list):
            return [out.from_orm(item).model_dump(mode="json") for item in result]
        return out.from_orm(result).model_dump(mode="json")

    def finish(body: Any) -> Status:
        return Status(status, then(body) if then is not None else body)

    if not key:
        with transaction.atomic():
            body = render(action())
        return finish(body)
    if len(key) > 255 or not key.isprintable():
        raise ValidationFailed(
            "Idempotency-Key must be at most 255 printable characters.",
            code="invalid_idempotency_key",
            fields={"Idempotency-Key": ["At most 255 printable characters."]},
        )
    owner, fingerprint = _owner(request), _fingerprint(request, payload)
    withheld = set(secret_fields)
    while True:
        claimed = _claim(owner, key, fingerprint)
        if isinstance(claimed, Status):
            return claimed
        record, token = claimed
        try:
            with transaction.atomic():
                body = render(action())
                stored, has_secret = body, False
                if withheld and isinstance(body, dict):
                    stored = {name: value for name, value in body.items() if name not in withheld}
                    has_secret = len(stored) != len(body)
                _complete(record, token, status=status, body=stored, secret_withheld=has_secret)
        except _ClaimLost:
            # Our claim expired and another request took the key over: its answer is the answer (the work
            # done here was rolled back).
            continue
        except PremierError as exc:
            if exc.status_code < 500 and exc.status_code != 422:
                # A business answer: recorded, so a retry with this key gets the same answer.
                with contextlib.suppress(_ClaimLost):
                    _complete(record, token, status=exc.status_code, body=exc.body(), secret_withheld=False)
            else:
                _release(record, token)
            raise
        except BaseException:
            _release(record, token)
            raise
        return finish(body)


def idempotency_records_purge() -> int:
    cutoff = timezone.now() - timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS)
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted
