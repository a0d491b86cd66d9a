"""Answers that must stay JSON in the usual error body when a view (the API, allauth's headless views, the
console) meets a lost database or an over-size body, instead of Django's HTML 500 or 400 page."""

from __future__ import annotations

import json
import logging
import math
import time

from django.core.cache import cache
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import JsonResponse
from django.http.request import RawPostDataException

logger = logging.getLogger("premier.api")

RETRY_AFTER_SECONDS = 5
DATABASE_UNAVAILABLE = (
    "The database is unavailable. Retry in a few seconds.",
    "database_unavailable",
)
TOO_BIG = ("The request body is larger than the server accepts.", "request_too_large")


def database_unavailable(exc: BaseException) -> bool:
    """A lost or refused database connection (not a query error such as a constraint violation)."""
    return isinstance(exc, OperationalError | InterfaceError)


def error_response(status: int, detail: str, code: str) -> JsonResponse:
    return JsonResponse({"detail": detail, "code": code, "fields": {}}, status=status)


class FaultAnswersMiddleware:
    """503 with Retry-After for a lost database, 413 for an over-size body: JSON, never an HTML page."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exc):
        if isinstance(exc, RequestDataTooBig):
            return error_response(413, *TOO_BIG)
        if isinstance(exc, DatabaseError) and database_unavailable(exc):
            logger.warning("Database unavailable on %s %s: %s", request.method, request.path, exc)
            response = error_response(503, *DATABASE_UNAVAILABLE)
            response["Retry-After"] = str(RETRY_AFTER_SECONDS)
            return response
        return None


# allauth headless endpoints (path under /_allauth/<client>/v1/) and the rate-limit action each one consumes.
_ALLAUTH_ACTIONS = {
    "auth/login": ("login", "login_failed"),
    "auth/signup": ("signup",),
    "auth/password/request": ("reset_password",),
    "auth/password/reset": ("reset_password_from_key",),
    "auth/email/verify": ("confirm_email",),
    "auth/code/request": ("request_login_code",),
    "auth/reauthenticate": ("reauthenticate",),
    "account/password/change": ("change_password",),
    "account/email": ("manage_email",),
}
_ALLAUTH_DEFAULT_WAIT = 60


def _allauth_action(path: str) -> tuple[str, ...]:
    parts = path.strip("/").split("/")  # _allauth, client, v1, ...
    return _ALLAUTH_ACTIONS.get("/".join(parts[3:]), ())


def _allauth_key(request, action: str) -> str | None:
    """The key allauth uses for the per-key rates of `action` (the login address for failed logins)."""
    if action != "login_failed":
        return None
    try:
        email = json.loads(request.body or b"{}").get("email") or ""
    except (ValueError, AttributeError, RawPostDataException):
        return None
    from allauth.account.adapter import get_adapter

    return get_adapter(request)._get_login_attempts_cache_key(request, email=email)


def allauth_retry_after(request) -> int:
    """Seconds until allauth's rate limits for this endpoint let one more attempt through, read from the same
    cache histories allauth keeps (newest first). Falls back to the longest window of the endpoint's rates."""
    from allauth.core.internal import ratelimit

    waits, windows = [], []
    now = time.time()
    for action in _allauth_action(request.path):
        for rate in ratelimit.get_rates(app="allauth.account", action=action):
            windows.append(rate.duration)
            key = _allauth_key(request, action) if rate.per == "key" else None
            if rate.per not in {"ip", "key"} or (rate.per == "key" and key is None):
                continue
            try:
                cache_key = ratelimit.get_cache_key(request, app="allauth.account", action=action, rate=rate, key=key)
                history = cache.get(cache_key, [])
            except Exception as exc:  # noqa: BLE001 - an unreadable store: fall back to the window
                logger.warning("Rate-limit history unreadable (%s); Retry-After from the window.", exc)
                continue
            if len(history) >= rate.amount:
                waits.append(history[rate.amount - 1] + rate.duration - now)
    wait = max(waits) if waits else max(windows, default=_ALLAUTH_DEFAULT_WAIT)
    return max(1, math.ceil(wait))


def _is_login_lockout(response) -> bool:
    if response.status_code != 400 or not response.get("Content-Type", "").startswith("application/json"):
        return False
    try:
        errors = json.loads(response.content).get("errors") or []
    except ValueError:
        return False
    return any(error.get("code") == "too_many_login_attempts" for error in errors)


class AllauthThrottleMiddleware:
    """allauth headless answers a rate limit with a bare `{"status": 429}` (and a failed-login lockout with a 400):
    turn both into a 429 in the usual error body, with a message and Retry-After. `status` stays in the body for
    allauth's own clients."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if not request.path.startswith("/_allauth/"):
            return response
        if response.status_code != 429 and not _is_login_lockout(response):
            return response
        wait = allauth_retry_after(request)
        lockout = response.status_code == 400
        detail = (
            f"Too many failed login attempts for this address. Try again in {wait} seconds."
            if lockout
            else f"Too many attempts. Try again in {wait} seconds."
        )
        code = "too_many_login_attempts" if lockout else "throttled"
        throttled = JsonResponse({"status": 429, "detail": detail, "code": code, "fields": {}}, status=429)
        throttled["Retry-After"] = str(wait)
        throttled["Cache-Control"] = "no-store"
        for cookie in response.cookies.values():
            throttled.cookies[cookie.key] = cookie
        return throttled


class ContentSecurityPolicyMiddleware:
    """Sends settings.CONTENT_SECURITY_POLICY on HTML answers that do not set their own."""

    def __init__(self, get_response):
        from django.conf import settings

        self.get_response = get_response
        self.policy = getattr(settings, "CONTENT_SECURITY_POLICY", "")

    def __call__(self, request):
        response = self.get_response(request)
        if (
            self.policy
            and response.get("Content-Type", "").startswith("text/html")
            and "Content-Security-Policy" not in response
        ):
            response["Content-Security-Policy"] = self.policy
        return response
