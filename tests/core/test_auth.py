import pytest
from django.test import Client

from tests.conftest import ApiClient, api_as, login_token
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

ERROR_KEYS = {"detail", "code", "fields"}


def test_app_login_then_me_with_session_token():
    user = UserFactory(email="ada@example.test", first_name="Ada", roles=["programme_manager", "concierge_agent"])
    response = api_as(user).get("me")
    assert response.status_code == 200
    assert response.json() == {
        "id": user.pk,
        "email": "ada@example.test",
        "first_name": "Ada",
        "last_name": user.last_name,
        "roles": ["concierge_agent", "programme_manager"],
    }


def test_me_without_credentials_is_401_with_error_body(anon_api):
    response = anon_api.get("me")
    assert response.status_code == 401
    assert response.json() == {
        "detail": "Authentication credentials were missing or invalid.",
        "code": "not_authenticated",
        "fields": {},
    }


def test_bad_session_token_is_401():
    response = ApiClient({"X-Session-Token": "not-a-token"}).get("me")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_logged_out_token_is_401():
    user = UserFactory()
    token = login_token(user)
    assert ApiClient({"X-Session-Token": token}).get("me").status_code == 200
    logout = Client().delete("/_allauth/app/v1/auth/session", headers={"X-Session-Token": token})
    assert logout.status_code == 401  # allauth answers 401 once the session is gone
    response = ApiClient({"X-Session-Token": token}).get("me")
    assert response.status_code == 401
    assert set(response.json()) == ERROR_KEYS


def test_inactive_user_token_is_401():
    user = UserFactory()
    token = login_token(user)
    user.is_active = False
    user.save()
    assert ApiClient({"X-Session-Token": token}).get("me").status_code == 401


def test_browser_session_login_works_and_writes_need_csrf():
    user = UserFactory(roles=["programme_manager"])
    browser = Client(enforce_csrf_checks=True)
    browser.get("/_allauth/browser/v1/config")
    csrf = browser.cookies["csrftoken"].value
    response = browser.post(
        "/_allauth/browser/v1/auth/login",
        {"email": user.email, "password": "a-long-test-password-42"},
        content_type="application/json",
        headers={"X-CSRFToken": csrf},
    )
    assert response.status_code == 200, response.content
    me = browser.get("/api/v1/me")
    assert me.status_code == 200
    assert me.json()["email"] == user.email


def test_wrong_password_login_fails():
    user = UserFactory()
    response = Client().post(
        "/_allauth/app/v1/auth/login",
        {"email": user.email, "password": "wrong"},
        content_type="application/json",
    )
    assert response.status_code == 400
