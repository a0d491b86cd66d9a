"""Idempotency-Key claims: a key still held by a running request makes a duplicate wait and then answer 409
`idempotency_key_in_use` with Retry-After (never the action's own error); the claim of a request that died
expires and the next retry takes it over; business errors are recorded and replayed; secrets are never
stored."""

import json
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import ApiKey
from concierge.models import ConciergeRequest
from core.models import IdempotencyRecord
from tests.concierge.factories import make_member
from tests.conftest import api_as

pytestmark = pytest.mark.django_db

BODY = {"category": "tickets", "subject": "Two seats for the opera", "details": "Saturday", "visibility": "public"}


def _claim_like(probe_key: str, key: str, *, claimed_until) -> IdempotencyRecord:
    """A claim of `key` for the same request as `probe_key`, left `in_progress` by another request."""
    probe = IdempotencyRecord.objects.get(key=probe_key)
    return IdempotencyRecord.objects.create(
        owner=probe.owner,
        key=key,
        fingerprint=probe.fingerprint,
        state=IdempotencyRecord.State.IN_PROGRESS,
        claim_token="a" * 32,
        claimed_until=claimed_until,
    )


def test_a_duplicate_of_a_running_request_waits_then_answers_409_key_in_use(settings):
    settings.IDEMPOTENCY_WAIT_SECONDS = 0.3
    user, _ = make_member(monthly_request_allowance=5)
    api = api_as(user)
    assert api.post("concierge/requests", BODY, headers={"Idempotency-Key": "probe"}).status_code == 201
    _claim_like("probe", "running", claimed_until=timezone.now() + timedelta(seconds=60))

    started = time.monotonic()
    response = api.post("concierge/requests", BODY, headers={"Idempotency-Key": "running"})
    waited = time.monotonic() - started

    assert 0.3 <= waited < 1.5
    assert response.status_code == 409
    assert response["Retry-After"] == "2"
    assert response.json() == {
        "detail": "A request with this Idempotency-Key is still being processed. Retry shortly to get its answer.",
        "code": "idempotency_key_in_use",
        "fields": {},
    }
    assert ConciergeRequest.objects.count() == 1


def test_the_claim_of_a_request_that_died_expires_and_a_retry_takes_it_over():
    user, _ = make_member(monthly_request_allowance=5)
    api = api_as(user)
    assert api.post("concierge/requests", BODY, headers={"Idempotency-Key": "probe"}).status_code == 201
    stale = _claim_like("probe", "crashed", claimed_until=timezone.now() - timedelta(seconds=1))

    retry = api.post("concierge/requests", BODY, headers={"Idempotency-Key": "crashed"})
    again = api.post("concierge/requests", BODY, headers={"Idempotency-Key": "crashed"})

    assert retry.status_code == again.status_code == 201
    assert again.json() == retry.json()
    assert ConciergeRequest.objects.count() == 2
    stale.refresh_from_db()
    assert (stale.state, stale.status_code, stale.claimed_until) == ("completed", 201, None)
    assert stale.claim_token != "a" * 32


def test_a_business_error_is_recorded_and_replayed_to_a_retry_with_the_same_key():
    user, membership = make_member(monthly_request_allowance=0)
    api = api_as(user)
    first = api.post("concierge/requests", BODY, headers={"Idempotency-Key": "k"})
    assert first.status_code == 400
    assert first.json()["code"] == "allowance_exhausted"

    membership.tier.monthly_request_allowance = 5
    membership.tier.save()
    retry = api.post("concierge/requests", BODY, headers={"Idempotency-Key": "k"})
    fresh = api.post("concierge/requests", BODY, headers={"Idempotency-Key": "k2"})

    assert retry.status_code == 400
    assert retry.json() == first.json()
    assert fresh.status_code == 201
    assert ConciergeRequest.objects.count() == 1


def test_a_created_api_keys_secret_is_never_stored_in_the_idempotency_record(manager_api):
    headers = {"Idempotency-Key": "new-crm-key"}
    created = manager_api.post("api-keys", {"name": "CRM", "scopes": ["ingest"]}, headers=headers)
    assert created.status_code == 201
    secret = created.json()["secret"]

    record = IdempotencyRecord.objects.get(key="new-crm-key")
    stored = json.dumps(list(IdempotencyRecord.objects.filter(pk=record.pk).values())[0], default=str)
    assert secret not in stored
    assert "secret" not in record.response_body
    assert record.secret_withheld is True

    replay = manager_api.post("api-keys", {"name": "CRM", "scopes": ["ingest"]}, headers=headers)
    assert replay.status_code == 409
    assert replay.json() == {
        "detail": "The first request with this Idempotency-Key succeeded, but its answer held a secret that is "
        "shown only once and is not kept for replays. Use the created object as it is, or revoke it and create "
        "a new one with a new key.",
        "code": "idempotency_secret_not_replayable",
        "fields": {"id": [str(created.json()["id"])]},
    }
    assert ApiKey.objects.count() == 1
