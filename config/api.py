"""The one NinjaAPI at /api/v1/ with the error convention applied to every error."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist, RequestDataTooBig
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import DatabaseError
from django.http import Http404
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.errors import Throttled as NinjaThrottled
from ninja.throttling import AnonRateThrottle, AuthRateThrottle

from core.errors import PremierError
from core.middleware import DATABASE_UNAVAILABLE, RETRY_AFTER_SECONDS, TOO_BIG, database_unavailable
from core.openapi import document_errors
from core.parser import NulCharacterError, SafeJsonParser
from core.renderers import PremierJSONRenderer

logger = logging.getLogger("premier.api")

DESCRIPTION = """
Premier: the backend of a premium loyalty and concierge programme.

**Authentication.** People log in through django-allauth headless (`/_allauth/app/v1/auth/login` answers a
session token: send it as `X-Session-Token`; or the browser client's session cookie with `X-CSRFToken` on
writes). Integrations send `X-API-Key`. Each operation says which it accepts and which role it needs.

**Errors.** Every error body is `{"detail": "...", "code": "...", "fields": {...}}`: 400 business rule,
401 not authenticated, 403 role or scope missing, 404 unknown or not yours, 409 state conflict or
Idempotency-Key reuse, 413 body too large, 422 invalid input (`fields` names every bad field), 429 throttled
(with `Retry-After`), 503 database unavailable (with `Retry-After`; retry later).

**Idempotency.** Creating POSTs accept `Idempotency-Key`: a retry with the same key and body returns the
first answer (a business error included) and creates nothing twice; the same key with another body is a 409
`idempotency_key_reused`. A duplicate sent while the first request is still running waits for its answer (up to
5 s), else gets 409 `idempotency_key_in_use` with `Retry-After`. An answer that carries a secret (a new API key)
is never stored: its replay is a 409 `idempotency_secret_not_replayable`.

**Dependencies.** A dependency that does not answer in time (Stripe) is a 503 with `Retry-After`.
"""


class _FailOpen:
    """A throttle whose store cannot be read lets the request through with a logged warning (degrade, don't
    die): a cache outage must not take every endpoint, /health included, down with it."""

    def allow_request(self, request) -> bool:
        try:
            return super().allow_request(request)
        except Exception as exc:  # noqa: BLE001 - whatever the store raised
            logger.warning("Throttle store unavailable (%s: %s); request allowed.", type(exc).__name__, exc)
            return True


class FailOpenAnonRateThrottle(_FailOpen, AnonRateThrottle):
    pass


class FailOpenAuthRateThrottle(_FailOpen, AuthRateThrottle):
    pass


# Anonymous callers by IP, authenticated callers by credential (AuthRateThrottle reads request.auth).
THROTTLES = [
    FailOpenAnonRateThrottle(settings.API_THROTTLE_ANON),
    FailOpenAuthRateThrottle(settings.API_THROTTLE_AUTH),
]


class PremierAPI(NinjaAPI):
    """NinjaAPI whose OpenAPI document explains every operation's credentials and errors (core.openapi)."""

    def get_openapi_schema(self, *, path_prefix=None, path_params=None):
        return document_errors(super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params))


api = PremierAPI(
    title="Premier API",
    version="1",
    description=DESCRIPTION,
    urls_namespace="api-v1",
    docs_url="/docs",
    openapi_url="/openapi.json",
    throttle=THROTTLES,
    parser=SafeJsonParser(),
    renderer=PremierJSONRenderer(),
)


def _error(request, status: int, detail: str, code: str, fields: dict | None = None):
    return api.create_response(request, {"detail": detail, "code": code, "fields": fields or {}}, status=status)


def _validation_fields(errors: list[dict]) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    for error in errors:
        loc = [str(part) for part in error.get("loc", ())]
        # ninja prefixes the source ("body", "query", "path", "header"); drop it and the payload name.
        if loc and loc[0] in {"body", "query", "path", "header", "cookie", "form"}:
            loc = loc[1:]
        if len(loc) > 1 and loc[0] in {"payload", "data", "filters", "params"}:
            loc = loc[1:]
        fields.setdefault(".".join(loc) or "__all__", []).append(error.get("msg", "Invalid value."))
    return fields


@api.exception_handler(PremierError)
def premier_error(request, exc: PremierError):
    response = _error(request, exc.status_code, exc.detail, exc.code, exc.fields)
    if exc.retry_after is not None:
        response["Retry-After"] = str(exc.retry_after)
    return response


@api.exception_handler(ValidationError)
def validation_error(request, exc: ValidationError):
    return _error(request, 422, "The input is not valid.", "validation_error", _validation_fields(exc.errors))


@api.exception_handler(AuthenticationError)
def authentication_error(request, exc):
    return _error(request, 401, "Authentication credentials were missing or invalid.", "not_authenticated")


@api.exception_handler(NinjaThrottled)
def throttled(request, exc: NinjaThrottled):
    response = _error(request, 429, "Too many requests. Retry later.", "throttled")
    if exc.wait:
        response["Retry-After"] = str(int(exc.wait))
    return response


@api.exception_handler(HttpError)
def http_error(request, exc: HttpError):
    if isinstance(exc.__cause__, NulCharacterError):  # ninja wraps body parser errors in a 400
        return premier_error(request, exc.__cause__)
    code = {
        400: "malformed_request",
        403: "permission_denied",
        404: "not_found",
        405: "method_not_allowed",
    }.get(exc.status_code, "http_error")
    if "CSRF" in str(exc):
        code = "csrf_failed"
    return _error(request, exc.status_code, str(exc), code)


@api.exception_handler(Http404)
def not_found(request, exc):
    return _error(request, 404, "Not found.", "not_found")


@api.exception_handler(ObjectDoesNotExist)
def object_not_found(request, exc):
    return _error(request, 404, "Not found.", "not_found")


@api.exception_handler(DjangoPermissionDenied)
def permission_denied(request, exc):
    return _error(request, 403, str(exc) or "Permission denied.", "permission_denied")


@api.exception_handler(RequestDataTooBig)
def request_too_big(request, exc):
    return _error(request, 413, *TOO_BIG)


@api.exception_handler(DatabaseError)
def database_error(request, exc: DatabaseError):
    if not database_unavailable(exc):
        return server_error(request, exc)
    logger.warning("Database unavailable on %s %s: %s", request.method, request.path, exc)
    response = _error(request, 503, *DATABASE_UNAVAILABLE)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


@api.exception_handler(Exception)
def server_error(request, exc: Exception):
    logger.exception("Unhandled error on %s %s", request.method, request.path)
    return _error(request, 500, "Internal server error. It has been logged.", "server_error")


def _mount_routers() -> None:
    from accounts.api import router as accounts_router
    from community.api import router as community_router
    from concierge.api import router as concierge_router
    from core.api import router as core_router
    from events.api import router as events_router
    from loyalty.api import router as loyalty_router

    api.add_router("", core_router)
    api.add_router("", accounts_router)
    api.add_router("", loyalty_router)
    api.add_router("", concierge_router)
    api.add_router("", events_router)
    api.add_router("", community_router)


_mount_routers()
