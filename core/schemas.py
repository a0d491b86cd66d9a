from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Any

from ninja import Schema
from ninja.schema import DjangoGetter
from pydantic import Field, PlainSerializer, ValidationInfo, WithJsonSchema, model_validator


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


class RowSchema(Schema):
    """A Schema that validates a plain dict of its fields (a row a selector answered) with pydantic's own dict
    validation, and anything else (a model instance) through ninja's DjangoGetter as every Schema does. ninja
    wraps every object, dicts included, in a DjangoGetter that looks each field up in Python: for a list of 20
    events, 340 lookups per request (issue 16). The keys of the dict are the field names; resolvers, which
    exist for model instances, are not called for dicts."""

    @model_validator(mode="wrap")
    @classmethod
    def _run_root_validator(cls, values: Any, handler, info: ValidationInfo) -> Any:
        if type(values) is dict:
            return handler(values)
        return handler(DjangoGetter(values, cls, info.context))


def responses(ok: dict[int, Any], *extra_errors: int) -> dict[int, Any]:
    """Response map for an operation: its success schemas plus every error status it may answer."""
    result: dict[int, Any] = dict(ok)
    for status in sorted({*COMMON_ERRORS, *extra_errors}):
        result[status] = ErrorOut
    return result


def describe(who: str, text: str = "", *, errors: dict[int, str | list[str]] | None = None) -> str:
    """An operation's description: who may call it, what it does, and the error codes of its own.

    `errors` maps a status to this operation's codes and what they mean, as markdown, one string or a list:
    `{409: "`invalid_transition`: the request cannot move from its status to the one asked."}`.
    The API (core.openapi.document_errors) adds the credentials it accepts and a line for every declared error
    status with the codes every operation shares (`not_authenticated`, `role_required`, `validation_error`...).
    """
    parts = [f"**Who may call:** {who}"]
    if text:
        parts.append(text)
    lines = []
    for status, meanings in sorted((errors or {}).items()):
        for meaning in [meanings] if isinstance(meanings, str) else meanings:
            lines.append(f"- **{status}** {meaning}")
    if lines:
        parts.append(ERRORS_HEADING + "\n" + "\n".join(lines))
    return "\n\n".join(parts)


ERRORS_HEADING = "**Errors:**"


class MessageOut(Schema):
    detail: str


def file_response(media_type: str, description: str) -> dict[str, Any]:
    """`openapi_extra` for an operation that answers a file (CSV, SVG) with `response={200: None, ...}`.

    The status key is the int 200, like ninja's own keys, so it merges into ninja's 200 response. A string
    "200" would sit beside the int 200 and serialise as the same key twice, which Swagger UI refuses.
    """
    return {"responses": {200: {"description": description, "content": {media_type: {"schema": {"type": "string"}}}}}}


def money_str(value: Decimal | int | float | str) -> str:
    """A money amount as a plain decimal string with two places ("1017.35", "-3.10"), never an exponent or the
    long tail a database aggregate may carry ("1017.35000000000")."""
    if type(value) is not Decimal:  # a Decimal is its own str() round trip: no need to go through text
        value = Decimal(str(value))
    return f"{value.quantize(CENTS, rounding=ROUND_HALF_UP):f}"


CENTS = Decimal("0.01")

# Money in API output: a plain decimal string with two places; the schema that carries it has a `currency`
# (ISO 4217) beside it. Input keeps accepting numbers or strings.
Money = Annotated[
    Decimal,
    PlainSerializer(money_str, return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^-?\d+\.\d{2}$", "examples": ["1017.35"]}, mode="serialization"),
]
