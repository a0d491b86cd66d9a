from __future__ import annotations

from typing import Any

from ninja import Schema
from pydantic import Field


class ErrorOut(Schema):
    """The error body of every non-2xx answer."""

    detail: str = Field(description="Human-readable explanation.")
    code: str = Field(description="Stable machine-readable error code.")
    fields: dict[str, Any] = Field(
        default_factory=dict,
        description="Per-field problems: field path to a list of messages, or row details.",
    )


# Errors any operation can answer: malformed request, bad/missing credentials, wrong role, unknown or hidden
# object, schema validation, throttling.
COMMON_ERRORS = (400, 401, 403, 404, 422, 429)


def responses(ok: dict[int, Any], *extra_errors: int) -> dict[int, Any]:
    """Response map for an operation: its success schemas plus every error status it may answer."""
    result: dict[int, Any] = dict(ok)
    for status in sorted({*COMMON_ERRORS, *extra_errors}):
        result[status] = ErrorOut
    return result


class MessageOut(Schema):
    detail: str


def file_response(media_type: str, description: str) -> dict[str, Any]:
    """`openapi_extra` for an operation that answers a file (CSV, SVG) with `response={200: None, ...}`.

    The status key is the int 200, like ninja's own keys, so it merges into ninja's 200 response. A string
    "200" would sit beside the int 200 and serialise as the same key twice, which Swagger UI refuses.
    """
    return {"responses": {200: {"description": description, "content": {media_type: {"schema": {"type": "string"}}}}}}
