from __future__ import annotations

from datetime import datetime
from typing import Any

from ninja import Schema
from pydantic import Field

NO_NUL = r"^[^\x00]*$"  # PostgreSQL cannot store NUL characters


class ScoringModelPatch(Schema):
    description: str | None = Field(None, max_length=2000, pattern=NO_NUL)
    revenue_window_days: int | None = Field(None, ge=1, le=3650, description="Revenue window (default 365).")
    engagement_window_days: int | None = Field(None, ge=7, le=434, description="Engagement window (default 90).")
    channel_weights: dict[str, float] | None = Field(
        None, description="Channel to weight (0-100); missing channels keep the default model's weight."
    )
    breadth_weight: float | None = Field(None, ge=0, le=100, description="Weight of channels used out of six.")
    frequency_weight: float | None = Field(None, ge=0, le=100, description="Weight of active weeks in the window.")
    recency_weight: float | None = Field(None, ge=0, le=100, description="Weight of the decayed-activity percentile.")
    half_life_days: float | None = Field(None, gt=0, le=3650, description="Half-life of the activity decay.")


class ScoringModelIn(ScoringModelPatch):
    name: str = Field(
        min_length=1, max_length=100, pattern=NO_NUL, description="An existing name makes its next version."
    )


class ScoringModelOut(Schema):
    id: int
    name: str
    version: int
    description: str
    revenue_window_days: int
    engagement_window_days: int
    channel_weights: dict[str, float]
    breadth_weight: float
    frequency_weight: float
    recency_weight: float
    half_life_days: float
    created_at: datetime
    locked_at: datetime | None


class ScoringRunIn(Schema):
    scoring_model_id: int | None = Field(
        None, ge=1, le=2**62, description="Default: the newest version of the default model."
    )
    as_of: datetime | None = Field(None, description="Day the run scores as of (UTC). Default: now.")


class ScoringRunOut(Schema):
    id: int
    scoring_model_id: int
    as_of: datetime
    status: str
    progress: int
    customers_scored: int
    timings: dict[str, Any]
    error: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int
    heartbeat_at: datetime


class CustomerMetricsOut(Schema):
    customer_id: int
    revenue_minor: int
    revenue_rank: int
    revenue_percentile: float
    engagement_score: float
    engagement_percentile: float
    channels_used: int
    active_weeks: int
    days_since_last: int | None
    decayed_activity: float
