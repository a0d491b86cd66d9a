"""Request and answer schemas of the ingestion API. Row shapes come from the shared validator: the request
schemas document them, and `ingest_validation.rows_validate` checks them (so that one 422 names every bad row,
including rows that reference unknown customers)."""

from __future__ import annotations

from typing import Any

from ninja import Schema
from pydantic import Field, TypeAdapter

from loyalty.ingestion.services.validation import MAX_BATCH_ROWS, CustomerRow, InteractionRow, RevenueRow

_ROWS = f"1 to {MAX_BATCH_ROWS:,} rows, upserted by external_id. One bad row rejects the whole batch."


def _rows_field(row_type: type) -> Any:
    """The rows stay as parsed (list[Any]: no copy of ten thousand dicts here): `rows_validate` type-checks them,
    so that a row that is not even an object is a bad row of the batch like any other. The OpenAPI document
    shows the row type."""
    item_schema = TypeAdapter(row_type).json_schema()
    return Field(
        min_length=1,
        max_length=MAX_BATCH_ROWS,
        description=_ROWS,
        json_schema_extra=lambda schema: schema.update(items=item_schema),
    )


class CustomerBatchIn(Schema):
    rows: list[Any] = _rows_field(CustomerRow)


class RevenueBatchIn(Schema):
    rows: list[Any] = _rows_field(RevenueRow)


class InteractionBatchIn(Schema):
    rows: list[Any] = _rows_field(InteractionRow)


class IngestResultOut(Schema):
    kind: str = Field(description="customers, revenue or interactions.")
    rows: int = Field(description="Rows in the batch.")
    created: int = Field(description="Rows with a new external_id.")
    updated: int = Field(description="Existing rows whose values changed.")
    unchanged: int = Field(description="Existing rows sent again with the same values.")
