"""Every allauth headless flow, for both clients (app: session token; browser: session cookie): none answers 500,
and sign-up with a known address answers exactly like sign-up with a new one (no enumeration)."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.test import Client

from tests.factories import TEST_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

CLIENTS = ["app", "browser"]
NEW_PASSWORD = "a-long-new-password-2026"


class Headless:
    """One allauth headless client: the app client carries X-Session-Token, the browser client a session cookie."""

    def __init__(self, kind: str):
        self.kind = kind
        self.client = Client()
        self.token: str | None = None

    def call(self, method: str, path: str, data: dict | None = None):
        headers = {"X-Session-Token": self.token} if self.kind == "app" and self.token else {}
        url = f"/_allauth/{self.kind}/v1/{path}"
        if method == "get":
            response = self.client.get(url, headers=headers)
        else:
            response = getattr(self.client, method)(url, data or {}, content_type="application/json", headers=headers)
        assert response.status_code < 500, response.content
        token = (response.json().get("meta") or {}).get("session_token")
        if token:
            self.token = token
        return response


def _shape(body: dict) -> dict:
    """The parts of a sign-up answer a caller could compare: status, flows, whether authenticated."""
    return {
        "status": body["status"],
        "flows": body["data"]["flows"],
        "is_authenticated": body["meta"]["is_authenticated"],
        "has_session_token": "session_token" in body["meta"],
    }


def _code(message) -> str:
    match = re.search(r"^\s*([A-Z0-9]{4}-[A-Z0-9]{4})\s*$", message.body, re.MULTILINE)
    assert match, message.body
    return match.group(1)


@pytest.mark.parametrize("kind", CLIENTS)
def test_signup_with_a_known_email_answers_like_a_new_one(kind):
    UserFactory(email="taken@example.test")
    new = Headless(kind).call("post", "auth/signup", {"email": "fresh@example.test", "password": NEW_PASSWORD})
    known = Headless(kind).call("post", "auth/signup", {"email": "taken@example.test", "password": NEW_PASSWORD})
    assert new.status_code == known.status_code == 401
    assert _shape(known.json()) == _shape(new.json())
    assert _shape(new.json())["flows"][-1] == {"id": "verify_email", "is_pending": True}
    # Each address gets a mail: a verification code for the new one, "you already have an account" (with a
    # password-reset link) for the known one.
    assert sorted(m.to[0] for m in mail.outbox) == ["fresh@example.test", "taken@example.test"]
    known_mail = next(m for m in mail.outbox if m.to == ["taken@example.test"])
    assert "http://127.0.0.1:8000/account/password/reset" in known_mail.body


@pytest.mark.parametrize("kind", CLIENTS)
def test_signup_then_email_verification_by_code_logs_in(kind):
    client = Headless(kind)
    client.call("post", "auth/signup", {"email": "newbie@example.test", "password": NEW_PASSWORD})
    response = client.call("post", "auth/email/verify", {"key": _code(mail.outbox[-1])})
    assert response.status_code == 200
    assert response.json()["data"]["user"]["email"] == "newbie@example.test"
    assert response.json()["meta"]["is_authenticated"] is True


@pytest.mark.parametrize("kind", CLIENTS)
def test_login_then_logout(kind):
    user = UserFactory()
    client = Headless(kind)
    login = client.call("post", "auth/login", {"email": user.email, "password": TEST_PASSWORD})
    assert login.status_code == 200
    assert login.json()["data"]["user"]["email"] == user.email
    assert client.call("get", "auth/session").status_code == 200
    logout = client.call("delete", "auth/session")
    assert logout.status_code == 401
    assert logout.json()["meta"]["is_authenticated"] is False
    if kind == "browser":
        assert client.call("get", "auth/session").status_code == 401


@pytest.mark.parametrize("kind", CLIENTS)
def test_password_reset_request_answers_alike_for_known_and_unknown_emails(kind):
    user = UserFactory()
    known = Headless(kind).call("post", "auth/password/request", {"email": user.email})
    unknown = Headless(kind).call("post", "auth/password/request", {"email": "nobody@example.test"})
    assert known.status_code == unknown.status_code == 200
    assert known.json() == unknown.json() == {"status": 200}
    key_mail = next(m for m in mail.outbox if m.to == [user.email])
    key = re.search(r"/account/password/reset/(\S+)", key_mail.body).group(1)
    reset = Headless(kind).call("post", "auth/password/reset", {"key": key, "password": NEW_PASSWORD})
    assert reset.status_code in {200, 401}
    relogin = Headless(kind).call("post", "auth/login", {"email": user.email, "password": NEW_PASSWORD})
    assert relogin.status_code == 200


@pytest.mark.parametrize("kind", CLIENTS)
def test_login_throttle_answers_429_in_the_error_body_with_retry_after(settings, kind):
    settings.ACCOUNT_RATE_LIMITS = {"login": "3/m/ip"}
    user = UserFactory()
    answers = [
        Headless(kind).call("post", "auth/login", {"email": user.email, "password": "wrong-password-x"})
        for _ in range(4)
    ]
    assert [a.status_code for a in answers] == [400, 400, 400, 429]
    throttled = answers[-1]
    assert throttled.json() == {
        "status": 429,
        "detail": f"Too many attempts. Try again in {throttled['Retry-After']} seconds.",
        "code": "throttled",
        "fields": {},
    }
    assert 55 <= int(throttled["Retry-After"]) <= 60


@pytest.mark.parametrize("kind", CLIENTS)
def test_failed_login_lockout_answers_429_with_retry_after(kind):
    """allauth's default lockout: 5 failed logins per address per 5 minutes; the 6th attempt is refused."""
    user = UserFactory()
    answers = [
        Headless(kind).call("post", "auth/login", {"email": user.email, "password": "wrong-password-x"})
        for _ in range(6)
    ]
    assert [a.status_code for a in answers] == [400] * 5 + [429]
    locked = answers[-1]
    assert locked.json()["code"] == "too_many_login_attempts"
    assert locked.json()["detail"] == (
        f"Too many failed login attempts for this address. Try again in {locked['Retry-After']} seconds."
    )
    assert 295 <= int(locked["Retry-After"]) <= 300
    # The right password is refused too while the address is locked.
    right = Headless(kind).call("post", "auth/login", {"email": user.email, "password": TEST_PASSWORD})
    assert right.status_code == 429
