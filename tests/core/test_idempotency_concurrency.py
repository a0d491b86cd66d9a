"""One Idempotency-Key, many concurrent identical requests (real threads, real connections, PostgreSQL): one
effect, and every request gets the first answer, never the action's own error (`already_booked`,
`allowance_exhausted`)."""

import threading

import pytest
from django.db import connection
from django.utils import timezone

from accounts.models import ApiKey
from concierge.models import AllowanceUsage, ConciergeRequest
from concierge.services.requests import request_create
from events.models import Booking
from tests.concierge.factories import make_member
from tests.conftest import api_as
from tests.events.factories import EventFactory, member
from tests.factories import UserFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

THREADS = 20


def _concurrently(api, path: str, body: dict, key: str, n: int = THREADS) -> list[tuple[int, dict]]:
    barrier = threading.Barrier(n)
    answers: list[tuple[int, dict]] = []
    lock = threading.Lock()

    def attempt():
        try:
            barrier.wait()
            response = api.post(path, body, headers={"Idempotency-Key": key})
            with lock:
                answers.append((response.status_code, response.json()))
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def test_20_concurrent_bookings_with_one_key_get_20_identical_answers_and_book_once():
    user, membership = member()
    event = EventFactory(capacity=10)
    answers = _concurrently(api_as(user), f"events/{event.pk}/bookings", {}, "book-once")
    assert len(answers) == THREADS
    assert {status for status, _ in answers} == {201}
    first = answers[0][1]
    assert all(body == first for _, body in answers)
    assert first["status"] == "confirmed"
    assert Booking.objects.filter(membership=membership).count() == 1
    event.refresh_from_db()
    assert event.seats_booked == 1


def test_20_concurrent_concierge_creates_at_the_allowance_limit_with_one_key_create_once():
    user, membership = make_member(monthly_request_allowance=3)
    for subject in ("first", "second"):
        request_create(user=user, category="dining", subject=subject, now=timezone.now())
    body = {"category": "tickets", "subject": "Opera", "details": "Saturday", "visibility": "private"}
    answers = _concurrently(api_as(user), "concierge/requests", body, "last-one")
    assert len(answers) == THREADS
    assert {status for status, _ in answers} == {201}
    assert all(answer == answers[0][1] for _, answer in answers)
    assert ConciergeRequest.objects.filter(membership=membership).count() == 3
    assert AllowanceUsage.objects.get(membership=membership).used == 3


def test_concurrent_api_key_creates_with_one_key_create_once_and_never_replay_the_secret():
    manager_api = api_as(UserFactory(roles=["programme_manager"]))
    answers = _concurrently(manager_api, "api-keys", {"name": "CRM", "scopes": ["ingest"]}, "same-key", n=8)
    assert ApiKey.objects.count() == 1
    key_id = ApiKey.objects.get().pk
    statuses = sorted(status for status, _ in answers)
    assert statuses == [201] + [409] * 7
    assert [body["id"] for status, body in answers if status == 201] == [key_id]
    refused = [body for status, body in answers if status == 409]
    assert {body["code"] for body in refused} == {"idempotency_secret_not_replayable"}
    assert all(body["fields"] == {"id": [str(key_id)]} for body in refused)
