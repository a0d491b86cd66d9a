"""The one NinjaAPI at /api/v1/ with the error convention applied to every error."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.errors import Throttled as NinjaThrottled
from ninja.throttling import AnonRateThrottle, AuthRateThrottle

from core.errors import PremierError
from core.parser import NulCharacterError, SafeJsonParser

logger = logging.getLogger("premier.api")

DESCRIPTION = """
Premier: the backend of a premium loyalty and concierge programme.

**Authentication.** People log in through django-allauth headless (`/_allauth/app/v1/auth/login` answers a
session token: send it as `X-Session-Token`; or the browser client's session cookie with `X-CSRFToken` on
writes). Integrations send `X-API-Key`. Each operation says which it accepts and which role it needs.

**Errors.** Every error body is `{"detail": "...", "code": "...", "fields": {...}}`: 400 business rule,
401 not authenticated, 403 role or scope missing, 404 unknown or not yours, 409 state conflict or
Idempotency-Key reuse, 422 invalid input (`fields` names every bad field), 429 throttled.

**Idempotency.** Creating POSTs accept `Idempotency-Key`: a retry with the same key and body returns the
first answer and creates nothing twice; the same key with another body is a 409.
"""

# Anonymous callers by IP, authenticated callers by credential (AuthRateThrottle reads request.auth).
THROTTLES = [AnonRateThrottle(settings.API_THROTTLE_ANON), AuthRateThrottle(settings.API_THROTTLE_AUTH)]

api = NinjaAPI(
    title="Premier API",
    version="1",
    description=DESCRIPTION,
    urls_namespace="api-v1",
    docs_url="/docs",
    openapi_url="/openapi.json",
    throttle=THROTTLES,
    parser=SafeJsonParser(),
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
    return _error(request, exc.status_code, exc.detail, exc.code, exc.fields)


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
