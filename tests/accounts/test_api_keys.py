import pytest
from django.core.management import call_command

from accounts.models import ApiKey
from accounts.services import api_key_create, api_key_revoke
from tests.conftest import ApiClient, api_as
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_valid_key_authenticates_and_records_last_use():
    key, secret = api_key_create(name="CRM", scopes=["ingest"])
    assert key.secret_hash not in secret and len(key.secret_hash) == 64
    response = ApiClient({"X-API-Key": secret}).get("ingest/whoami")
    assert response.status_code == 200
    assert response.json() == {"id": key.pk, "name": "CRM", "scopes": ["ingest"]}
    key.refresh_from_db()
    assert key.last_used_at is not None


@pytest.mark.parametrize(
    "mangle", [lambda s: s[:-2] + "xx", lambda s: "pk_unknown.secret", lambda s: "garbage", lambda s: ""]
)
def test_wrong_secret_is_401(mangle):
    _, secret = api_key_create(name="CRM", scopes=["ingest"])
    response = ApiClient({"X-API-Key": mangle(secret)}).get("ingest/whoami")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_revoked_key_is_401():
    key, secret = api_key_create(name="CRM", scopes=["ingest"])
    api_key_revoke(key=key)
    assert ApiClient({"X-API-Key": secret}).get("ingest/whoami").status_code == 401


def test_key_without_scope_is_403(monkeypatch):
    key, secret = api_key_create(name="CRM", scopes=["ingest"])
    ApiKey.objects.filter(pk=key.pk).update(scopes=[])
    response = ApiClient({"X-API-Key": secret}).get("ingest/whoami")
    assert response.status_code == 403
    assert response.json() == {
        "detail": "This API key lacks the 'ingest' scope.",
        "code": "api_key_scope_missing",
        "fields": {},
    }


def test_user_session_cannot_use_ingest_endpoints():
    manager = UserFactory(roles=["programme_manager"])
    assert api_as(manager).get("ingest/whoami").status_code == 401


def test_create_api_key_command_prints_secret_once(capsys):
    call_command("create_api_key", "Billing feed", "--scope", "ingest")
    out = capsys.readouterr().out.strip().splitlines()
    secret = out[-1]
    key = ApiKey.objects.get(name="Billing feed")
    assert secret.startswith(f"pk_{key.prefix}.")
    assert ApiClient({"X-API-Key": secret}).get("ingest/whoami").status_code == 200
    call_command("revoke_api_key", key.prefix)
    assert ApiClient({"X-API-Key": secret}).get("ingest/whoami").status_code == 401


def test_manager_creates_lists_and_revokes_keys_and_others_cannot():
    manager_api = api_as(UserFactory(roles=["programme_manager"]))
    created = manager_api.post("api-keys", {"name": "CRM", "scopes": ["ingest"]})
    assert created.status_code == 201
    body = created.json()
    assert ApiClient({"X-API-Key": body["secret"]}).get("ingest/whoami").status_code == 200
    listed = manager_api.get("api-keys")
    assert listed.status_code == 200
    assert listed.json()["count"] == 1
    assert "secret" not in listed.json()["items"][0]

    agent_api = api_as(UserFactory(roles=["concierge_agent"]))
    denied = agent_api.post("api-keys", {"name": "sneaky", "scopes": ["ingest"]})
    assert denied.status_code == 403
    assert denied.json()["code"] == "role_required"
    assert agent_api.post(f"api-keys/{body['id']}/revoke").status_code == 403
    assert ApiKey.objects.count() == 1
    assert ApiKey.objects.get().revoked_at is None

    revoked = manager_api.post(f"api-keys/{body['id']}/revoke")
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    assert ApiClient({"X-API-Key": body["secret"]}).get("ingest/whoami").status_code == 401
