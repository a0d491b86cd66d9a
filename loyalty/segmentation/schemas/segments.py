from __future__ import annotations

from datetime import datetime
from typing import Any

from ninja import Schema
from pydantic import Field

NO_NUL = r"^[^\x00]*$"  # PostgreSQL cannot store NUL characters

RULE_HELP = (
    'JSON tree: {"all": [...]}, {"any": [...]}, {"not": {...}} or {"field": ..., "op": ..., "value": ...}; '
    "ops eq, ne, lt, lte, gt, gte, in, not_in. Fields: revenue (major units), revenue_minor, revenue_rank, "
    "revenue_percentile, engagement_score, engagement_percentile, channels_used, active_weeks, days_since_last, "
    "decayed_activity, region, status, age, age_band, tenure_days. {} matches everyone."
)


class SegmentRuleIn(Schema):
    rule: dict[str, Any] | None = Field(None, description=RULE_HELP)
    top_n: int | None = Field(None, ge=1, le=100_000_000, description="Keep only the top N by top_by.")
    top_by: str = Field("", max_length=64, description="Metric ranking the top N (highest first).")
    tie_break: str = Field("", max_length=64, description="Second metric for ties; then customer id.")


class SegmentIn(SegmentRuleIn):
    name: str = Field(min_length=1, max_length=100, pattern=NO_NUL)
    description: str = Field("", max_length=2000, pattern=NO_NUL)


class SegmentPatch(Schema):
    name: str | None = Field(None, min_length=1, max_length=100, pattern=NO_NUL)
    description: str | None = Field(None, max_length=2000, pattern=NO_NUL)
    rule: dict[str, Any] | None = Field(None, description=RULE_HELP)
    top_n: int | None = Field(None, ge=1, le=100_000_000)
    top_by: str | None = Field(None, max_length=64)
    tie_break: str | None = Field(None, max_length=64)


class SegmentOut(Schema):
    id: int
    name: str
    description: str
    rule: dict[str, Any]
    top_n: int | None
    top_by: str
    tie_break: str
    created_at: datetime
    updated_at: datetime


class SegmentPreviewIn(SegmentRuleIn):
    scoring_run_id: int | None = Field(None, ge=1, le=2**62, description="Default: the newest successful scoring run.")


class SampleMemberOut(Schema):
    customer_id: int
    external_id: str
    name: str
    rank: int
    values: dict[str, Any]


class SegmentPreviewOut(Schema):
    scoring_run_id: int
    candidates_count: int = Field(description="Customers matching the rule.")
    member_count: int = Field(description="Customers a run would keep (after top N).")
    sample: list[SampleMemberOut]


class SegmentRunIn(Schema):
    scoring_run_id: int | None = Field(None, ge=1, le=2**62, description="Default: the newest successful scoring run.")


class SegmentRunOut(Schema):
    id: int
    segment_id: int
    scoring_run_id: int
    rule_snapshot: dict[str, Any]
    status: str
    progress: int
    candidates_count: int
    member_count: int
    timings: dict[str, Any]
    error: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int
    heartbeat_at: datetime


class SegmentMemberOut(Schema):
    customer_id: int
    external_id: str = Field(alias="customer.external_id")
    rank: int
    values: dict[str, Any]


class SegmentDiffOut(Schema):
    run_id: int
    against_run_id: int
    entered_count: int
    left_count: int
    stayed_count: int
    entered: list[int] = Field(description="Customer ids that entered (first 100 by rank).")
    left: list[int] = Field(description="Customer ids that left (first 100 by rank in the older run).")


class ConditionOut(Schema):
    path: str
    field: str
    op: str
    value: Any
    actual: Any
    passed: bool


class SegmentExplainOut(Schema):
    run_id: int
    customer_id: int
    in_segment: bool
    rank: int | None
    scored: bool
    matches_rule: bool
    top_n: int | None
    top_by: str
    metrics: dict[str, Any]
    conditions: list[ConditionOut]
    reason: str
