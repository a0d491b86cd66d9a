"""The one error convention: every error body is {"detail": str, "code": str, "fields": {...}}.

Services raise these exceptions; the API's exception handlers (config.api) turn them into responses.
Codes are stable strings that clients can switch on; `detail` is for humans.
"""

from __future__ import annotations

from typing import Any


class PremierError(Exception):
    status_code = 400
    default_code = "bad_request"
    default_detail = "The request could not be processed."

    def __init__(
        self,
        detail: str | None = None,
        *,
        code: str | None = None,
        fields: dict | None = None,
        retry_after: int | None = None,
    ):
        self.detail = detail or self.default_detail
        self.code = code or self.default_code
        self.fields: dict[str, Any] = fields or {}
        # Seconds after which a retry may succeed: sent as the `Retry-After` header (503, 409 key in use).
        self.retry_after = retry_after
        super().__init__(self.detail)

    def body(self) -> dict[str, Any]:
        return {"detail": self.detail, "code": self.code, "fields": self.fields}


class BusinessRuleError(PremierError):
    """400: the input is well-formed but breaks a business rule."""


class NotAuthenticated(PremierError):
    status_code = 401
    default_code = "not_authenticated"
    default_detail = "Authentication credentials were missing or invalid."


class PermissionDenied(PremierError):
    status_code = 403
    default_code = "permission_denied"
    default_detail = "You do not have permission to perform this action."


class NotFound(PremierError):
    status_code = 404
    default_code = "not_found"
    default_detail = "Not found."


class Conflict(PremierError):
    status_code = 409
    default_code = "conflict"
    default_detail = "The request conflicts with the current state of the resource."


class ValidationFailed(PremierError):
    """422: the input does not validate. `fields` maps a field path to a list of messages."""

    status_code = 422
    default_code = "validation_error"
    default_detail = "The input is not valid."


class Throttled(PremierError):
    status_code = 429
    default_code = "throttled"
    default_detail = "Too many requests."


class ServiceUnavailable(PremierError):
    status_code = 503
    default_code = "service_unavailable"
    default_detail = "A dependency is unavailable."
