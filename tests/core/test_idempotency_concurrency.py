import threading

import pytest
from django.db import connection

from accounts.models import ApiKey
from tests.conftest import api_as
from tests.factories import UserFactory


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_retries_with_one_key_create_once():
    manager_api = api_as(UserFactory(roles=["programme_manager"]))
    barrier = threading.Barrier(8)
    answers: list[tuple[int, dict]] = []
    lock = threading.Lock()

    def attempt():
        try:
            barrier.wait()
            response = manager_api.post(
                "api-keys", {"name": "CRM", "scopes": ["ingest"]}, headers={"Idempotency-Key": "same-key"}
            )
            with lock:
                answers.append((response.status_code, response.json()))
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert ApiKey.objects.count() == 1
    assert [status for status, _ in answers] == [201] * 8
    assert len({body["id"] for _, body in answers}) == 1
