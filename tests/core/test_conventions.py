import json

import pytest
from django.test import Client

from accounts.models import ApiKey
from tests.conftest import api_as
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def manager_api():
    return api_as(UserFactory(roles=["programme_manager"]))


def test_health_reports_database_and_broker(client):
    response = client.get("/api/v1/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"] == "ok"
    assert body["broker"] in {"ok", "eager"}


def test_docs_page_uses_local_static_files_only(client):
    response = client.get("/api/v1/docs")
    assert response.status_code == 200
    html = response.content.decode()
    assert "/static/ninja/" in html
    assert "cdn" not in html.lower() and "https://" not in html
    assert client.get("/static/ninja/swagger-ui-bundle.js").status_code == 200


def test_openapi_security_scheme_for_session_token_is_valid(client):
    schemes = client.get("/api/v1/openapi.json").json()["components"]["securitySchemes"]
    assert schemes["SessionTokenAuth"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-Session-Token",
        "description": schemes["SessionTokenAuth"]["description"],
    }


@pytest.mark.parametrize(
    "query,field",
    [
        ("offset=99999999999999999999", "offset"),
        ("offset=-1", "offset"),
        ("limit=0", "limit"),
        ("limit=100000", "limit"),
    ],
)
def test_out_of_range_pagination_is_422_naming_the_field(manager_api, query, field):
    response = manager_api.get(f"/api/v1/api-keys?{query}")
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "validation_error"
    assert list(body["fields"]) == [field]


def test_schema_validation_error_names_fields(manager_api):
    response = manager_api.post("api-keys", {"name": "", "scopes": ["root"]})
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"
    assert set(response.json()["fields"]) == {"name", "scopes.0"}
    assert ApiKey.objects.count() == 0


def test_unknown_object_is_404_with_error_body(manager_api):
    response = manager_api.post("api-keys/999/revoke")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found.", "code": "not_found", "fields": {}}


def test_idempotent_post_retry_creates_nothing_twice(manager_api):
    headers = {"Idempotency-Key": "create-crm-key-1"}
    first = manager_api.post("api-keys", {"name": "CRM", "scopes": ["ingest"]}, headers=headers)
    retry = manager_api.post("api-keys", {"scopes": ["ingest"], "name": "CRM"}, headers=headers)
    assert first.status_code == 201
    # The answer held the key's secret, which is never stored: the replay names the key and refuses.
    assert retry.status_code == 409
    assert retry.json()["code"] == "idempotency_secret_not_replayable"
    assert retry.json()["fields"] == {"id": [str(first.json()["id"])]}
    assert ApiKey.objects.count() == 1


def test_idempotency_key_reused_with_other_body_is_409(manager_api):
    headers = {"Idempotency-Key": "k-2"}
    assert manager_api.post("api-keys", {"name": "CRM", "scopes": ["ingest"]}, headers=headers).status_code == 201
    clash = manager_api.post("api-keys", {"name": "Billing", "scopes": ["ingest"]}, headers=headers)
    assert clash.status_code == 409
    assert clash.json()["code"] == "idempotency_key_reused"
    assert list(ApiKey.objects.values_list("name", flat=True)) == ["CRM"]


def test_idempotency_keys_are_per_caller():
    first = api_as(UserFactory(roles=["programme_manager"]))
    second = api_as(UserFactory(roles=["programme_manager"]))
    headers = {"Idempotency-Key": "same"}
    assert first.post("api-keys", {"name": "A", "scopes": ["ingest"]}, headers=headers).status_code == 201
    assert second.post("api-keys", {"name": "B", "scopes": ["ingest"]}, headers=headers).status_code == 201
    assert ApiKey.objects.count() == 2


def test_session_cookie_write_without_csrf_is_refused():
    user = UserFactory(roles=["programme_manager"])
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    response = browser.post("/api/v1/api-keys", {"name": "x", "scopes": ["ingest"]}, content_type="application/json")
    assert response.status_code == 403
    assert response.json()["code"] == "csrf_failed"
    assert ApiKey.objects.count() == 0


def test_throttling_answers_429_with_error_body(settings, client):
    from config.api import THROTTLES

    throttle = THROTTLES[0]
    original = throttle.rate, throttle.num_requests, throttle.duration
    throttle.rate, throttle.num_requests, throttle.duration = "2/min", 2, 60
    try:
        answers = [client.get("/api/v1/health") for _ in range(3)]
    finally:
        throttle.rate, throttle.num_requests, throttle.duration = original
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2].json() == {
        "detail": "Too many requests. Retry later.",
        "code": "throttled",
        "fields": {},
    }


def test_nul_characters_in_body_are_a_422_naming_the_field(manager_api):
    response = manager_api.post("api-keys", {"name": "CRM\u0000", "scopes": ["ingest"]})
    assert response.status_code == 422
    assert response.json() == {
        "detail": "The input is not valid.",
        "code": "validation_error",
        "fields": {"name": ["NUL characters (\\u0000) are not allowed."]},
    }
    assert ApiKey.objects.count() == 0


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32"])
def test_nul_characters_in_a_utf16_or_utf32_body_are_a_422_too(manager_api, encoding):
    body = json.dumps({"name": "CRM\u0000", "scopes": ["ingest"]}, ensure_ascii=False).encode(encoding)
    response = manager_api.post("api-keys", body)
    assert response.status_code == 422
    assert response.json()["fields"] == {"name": ["NUL characters (\\u0000) are not allowed."]}
    assert ApiKey.objects.count() == 0


def test_nul_characters_in_query_are_a_422(manager_api):
    response = manager_api.get("/api/v1/api-keys?limit=1%00")
    assert response.status_code == 422
    assert response.json()["fields"] == {"limit": ["NUL characters (\\u0000) are not allowed."]}
