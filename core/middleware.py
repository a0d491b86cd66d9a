"""Answers that must stay JSON in the usual error body when a view (the API, allauth's headless views, the
console) meets a lost database or an over-size body, instead of Django's HTML 500 or 400 page."""

from __future__ import annotations

import logging

from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import JsonResponse

logger = logging.getLogger("premier.api")

RETRY_AFTER_SECONDS = 5
DATABASE_UNAVAILABLE = (
    "The database is unavailable. Nothing was changed by this request unless it says otherwise; retry shortly.",
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
