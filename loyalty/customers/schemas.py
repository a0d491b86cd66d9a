"""Schemas of the customer read API (programme managers and agents)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from ninja import Schema
from pydantic import Field

from core.schemas import Money
from loyalty.customers.selectors import ORDERINGS


class CustomerFilters(Schema):
    q: str | None = Field(
        None, max_length=200, pattern=r"^[^\x00]*$", description="External id, email (or its start), name part, phone."
    )
    status: Literal["active", "churned"] | None = None
    region: str | None = Field(None, max_length=64, pattern=r"^[^\x00]*$")
    joined_from: date | None = Field(None, description="Joined on or after this day.")
    joined_to: date | None = Field(None, description="Joined on or before this day.")
    ordering: Literal[tuple(ORDERINGS)] = "id"  # type: ignore[valid-type]


class CustomerOut(Schema):
    id: int
    external_id: str
    name: str
    email: str
    region: str
    status: str
    joined_at: datetime
    churned_at: datetime | None


class MonthRevenueOut(Schema):
    month: date
    amount: Money = Field(description="Plain decimal with 2 places, in `currency`.")
    currency: str


class ChannelShareOut(Schema):
    channel: str
    count: int
    share: float = Field(description="Share of the customer's interactions in the last year (0-1).")
    last_at: datetime


class InteractionOut(Schema):
    id: int
    channel: str
    kind: str
    occurred_at: datetime
    external_id: str


class CustomerDetailOut(CustomerOut):
    phone: str
    birth_year: int | None
    attributes: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    revenue_by_month: list[MonthRevenueOut] = Field(
        description="Last 12 months, oldest first, zeros included, in `revenue_currency`; a month with revenue in "
        "another currency also has a row in that currency (amounts are never summed across currencies)."
    )
    revenue_total: Money = Field(description="Sum of revenue_by_month in `revenue_currency`.")
    revenue_currency: str = Field(description="ISO 4217 code of the customer's main revenue currency.")
    channel_mix: list[ChannelShareOut] = Field(description="Interactions per channel in the last 365 days.")
    last_interactions: list[InteractionOut] = Field(description="The 10 most recent interactions.")
