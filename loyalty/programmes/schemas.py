from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from ninja import Schema
from pydantic import Field

NO_NUL = r"^[^\x00]*$"  # PostgreSQL text cannot hold NUL: refuse it as a 422, not a 500

Metric = Literal["revenue_percentile", "engagement_score", "engagement_percentile", "revenue_minor"]


class ProgrammeIn(Schema):
    name: str = Field(min_length=1, max_length=100, pattern=NO_NUL)
    description: str = Field("", max_length=5000, pattern=NO_NUL)
    holdout_percent: Decimal = Field(Decimal("10"), ge=0, le=50, max_digits=5, decimal_places=2)
    seed: str | None = Field(None, min_length=1, max_length=64, description="Generated when omitted.", pattern=NO_NUL)
    qualifying_metric: Metric = "revenue_percentile"
    evaluation_cadence_days: int = Field(30, ge=1, le=3650)
    grace_period_days: int = Field(60, ge=1, le=3650)
    expected_retention: float = Field(0.89, gt=0, lt=1, description="Yearly retention without the programme.")
    primary_metric: Literal["retention"] = Field(
        "retention", description="The impact report's one confirmatory question (frozen once customers are enrolled)."
    )
    primary_horizon_months: int = Field(
        12, ge=1, le=60, description="Months after enrolment at which the primary question is decided."
    )


class ProgrammePatch(Schema):
    name: str | None = Field(None, min_length=1, max_length=100, pattern=NO_NUL)
    description: str | None = Field(None, max_length=5000, pattern=NO_NUL)
    status: Literal["active", "closed"] | None = None
    holdout_percent: Decimal | None = Field(None, ge=0, le=50, max_digits=5, decimal_places=2)
    seed: str | None = Field(None, min_length=1, max_length=64, pattern=NO_NUL)
    qualifying_metric: Metric | None = None
    evaluation_cadence_days: int | None = Field(None, ge=1, le=3650)
    grace_period_days: int | None = Field(None, ge=1, le=3650)
    expected_retention: float | None = Field(None, gt=0, lt=1)
    primary_metric: Literal["retention"] | None = None
    primary_horizon_months: int | None = Field(None, ge=1, le=60)


class ProgrammeOut(Schema):
    id: int
    name: str
    description: str
    status: str
    holdout_percent: Decimal
    seed: str
    qualifying_metric: str
    evaluation_cadence_days: int
    grace_period_days: int
    expected_retention: float
    primary_metric: str
    primary_horizon_months: int
    last_evaluated_at: datetime | None
    created_at: datetime


class TierIn(Schema):
    rank: int = Field(ge=1, le=1000, description="Higher rank = better tier; unique in the programme.")
    name: str = Field(min_length=1, max_length=64, pattern=NO_NUL)
    threshold: float = Field(ge=-1e15, le=1e15, description="Minimum of the programme's qualifying metric.")
    first_response_sla_hours: int = Field(24, ge=0, le=10000)
    resolution_sla_hours: int = Field(72, ge=0, le=10000)
    monthly_request_allowance: int = Field(5, ge=0, le=10000)
    early_access_hours: int = Field(0, ge=0, le=10000)
    guests_per_booking: int = Field(0, ge=0, le=100)


class TierPatch(Schema):
    rank: int | None = Field(None, ge=1, le=1000)
    name: str | None = Field(None, min_length=1, max_length=64, pattern=NO_NUL)
    threshold: float | None = Field(None, ge=-1e15, le=1e15)
    first_response_sla_hours: int | None = Field(None, ge=0, le=10000)
    resolution_sla_hours: int | None = Field(None, ge=0, le=10000)
    monthly_request_allowance: int | None = Field(None, ge=0, le=10000)
    early_access_hours: int | None = Field(None, ge=0, le=10000)
    guests_per_booking: int | None = Field(None, ge=0, le=100)


class TierOut(Schema):
    id: int
    programme_id: int
    rank: int
    name: str
    threshold: float
    first_response_sla_hours: int
    resolution_sla_hours: int
    monthly_request_allowance: int
    early_access_hours: int
    guests_per_booking: int


class EnrolmentIn(Schema):
    segment_run_id: int = Field(ge=1, le=2**62)


class EnrolmentOut(Schema):
    id: int
    programme_id: int
    segment_run_id: int
    status: str
    progress: int
    enrolled_count: int
    skipped_count: int
    result: dict[str, Any]
    timings: dict[str, Any]
    error: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int
    heartbeat_at: datetime


class TierRefOut(Schema):
    id: int
    rank: int
    name: str


class CustomerRefOut(Schema):
    id: int
    external_id: str
    name: str
    email: str
    status: str


class MembershipOut(Schema):
    id: int
    programme_id: int
    customer: CustomerRefOut
    group: str
    status: str
    tier: TierRefOut | None
    shadow_tier: TierRefOut | None = Field(description="Control group only: the tier it would have had.")
    override_tier: TierRefOut | None
    override_expires_at: datetime | None
    override_reason: str
    below_threshold_since: date | None
    enrolled_at: datetime
    ended_at: datetime | None
    source_run_id: int | None
    assignment_bucket: float
    last_evaluated_at: datetime | None


class TierChangeOut(Schema):
    id: int
    membership_id: int
    customer_external_id: str = Field(alias="membership.customer.external_id")
    from_tier: TierRefOut | None
    to_tier: TierRefOut | None
    reason: str
    note: str
    actor_id: int | None
    at: datetime


class OverrideIn(Schema):
    tier_id: int = Field(ge=1, le=2**62)
    expires_at: datetime
    reason: str = Field(min_length=1, max_length=255, pattern=NO_NUL)


class EvaluationOut(Schema):
    programme_id: int
    scoring_run_id: int | None
    evaluated: int
    upgrades: int
    downgrades: int
    downgrade_warnings: int
    recovered: int
    overrides_expired: int
    ended: int
    seconds: float


class PowerRowOut(Schema):
    holdout_percent: float
    treatment: int
    control: int
    min_detectable_retention_effect_points: float | None


class PowerOut(Schema):
    customers: int
    expected_retention: float
    rows: list[PowerRowOut]


# Member view


class MemberProgrammeOut(Schema):
    id: int
    name: str
    description: str


class MemberTierOut(Schema):
    name: str
    rank: int


class BenefitsOut(Schema):
    first_response_sla_hours: int
    resolution_sla_hours: int
    monthly_request_allowance: int
    early_access_hours: int
    guests_per_booking: int


class AllowanceOut(Schema):
    monthly: int
    used: int
    left: int
    resets_at: datetime


class ProgressOut(Schema):
    metric: str
    value: float | None
    next_tier: str | None
    threshold: float | None
    remaining: float | None = Field(description="How far the metric is below the next tier's threshold.")


class DowngradeWarningOut(Schema):
    below_threshold_since: date
    downgrade_to: str
    earliest_downgrade_on: date
    threshold: float


class MyMembershipOut(Schema):
    programme: MemberProgrammeOut
    tier: MemberTierOut | None
    tier_source: Literal["evaluated", "override"]
    override_expires_at: datetime | None
    enrolled_at: datetime
    benefits: BenefitsOut | None
    allowance: AllowanceOut
    progress: ProgressOut
    next_evaluation_at: datetime
    downgrade_warning: DowngradeWarningOut | None
