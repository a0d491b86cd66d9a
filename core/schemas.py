from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Any

from ninja import Schema
from pydantic import Field, PlainSerializer, WithJsonSchema


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


def money_str(value: Decimal | int | float | str) -> str:
    """A money amount as a plain decimal string with two places ("1017.35", "-3.10"), never an exponent or the
    long tail a database aggregate may carry ("1017.35000000000")."""
    return f"{Decimal(str(value)).quantize(CENTS, rounding=ROUND_HALF_UP):f}"


CENTS = Decimal("0.01")

# Money in API output: a plain decimal string with two places; the schema that carries it has a `currency`
# (ISO 4217) beside it. Input keeps accepting numbers or strings.
Money = Annotated[
    Decimal,
    PlainSerializer(money_str, return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^-?\d+\.\d{2}$", "examples": ["1017.35"]}, mode="serialization"),
]
