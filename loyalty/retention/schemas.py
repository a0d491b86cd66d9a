"""Schemas of the retention outcomes and impact report APIs."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from ninja import Field, Schema

from core.schemas import Money

OutcomeValue = Literal["retained", "churned", "downgraded_plan", "upgraded_plan"]


class OutcomeIn(Schema):
    external_id: str | None = Field(None, max_length=64, description="Your id of this fact; resending it is safe.")
    membership_id: int | None = Field(None, ge=1, le=2**63 - 1, description="The membership, or give the next two.")
    programme_id: int | None = Field(None, ge=1, le=2**63 - 1)
    customer_external_id: str | None = Field(None, max_length=64, description="The CRM id of the customer.")
    observed_at: datetime = Field(description="When the outcome was observed (timezone-aware).")
    outcome: OutcomeValue
    revenue_change: Decimal | None = Field(None, max_digits=14, decimal_places=2)
    intends_to_stay: bool | None = None
    supersedes_id: int | None = Field(None, ge=1, le=2**63 - 1, description="Id of the outcome this corrects.")
    supersedes_external_id: str | None = Field(None, max_length=64, description="Or its external id.")


class OutcomeBatchIn(Schema):
    outcomes: list[OutcomeIn] = Field(min_length=1, max_length=5000)


class OutcomeOut(Schema):
    id: int
    membership_id: int
    observed_at: datetime
    outcome: str
    source: str
    revenue_change: Money | None = Field(description="Plain decimal with 2 places, in the programme's currency.")
    intends_to_stay: bool | None
    external_id: str | None
    supersedes_id: int | None
    superseded: bool = Field(description="True when a later correction replaced this outcome.")
    recorded_at: datetime

    @staticmethod
    def resolve_superseded(obj) -> bool:
        value = getattr(obj, "is_superseded", None)
        if value is not None:
            return bool(value)
        return hasattr(obj, "superseded_by")


class OutcomeBatchOut(Schema):
    received: int
    created: int
    unchanged: int
    ids: list[int] = Field(description="Ids of the outcomes, in the order of the batch rows.")


class ManualOutcomeIn(Schema):
    membership_id: int = Field(ge=1, le=2**63 - 1)
    observed_at: datetime
    outcome: OutcomeValue
    revenue_change: Decimal | None = Field(None, max_digits=14, decimal_places=2)
    intends_to_stay: bool | None = None
    supersedes_id: int | None = Field(None, ge=1, le=2**63 - 1)


# --- impact report ------------------------------------------------------------------------------------------


class GroupRateOut(Schema):
    n: int
    retained: int
    rate: float | None


class ComparisonOut(Schema):
    months: int
    horizon_days: int
    treatment: GroupRateOut
    control: GroupRateOut
    uplift: float | None = Field(description="Treatment minus control retention (fraction; 0.06 = 6 points).")
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    significant: bool
    relative_churn_reduction: float | None
    explanation: str
    not_evaluable: int | None = None
    available: bool = Field(True, description="False when follow-up or events fall short of the report's minimums.")
    reason: str | None = Field(None, description="What is missing (and until when), when not available.")
    ready_on: str | None = Field(None, description="Day enough members will have been followed to the horizon.")
    role: str | None = Field(
        None, description="`primary` (the one confirmatory question), `exploratory` or `untrustworthy`."
    )
    p_adjusted: float | None = Field(None, description="Benjamini-Hochberg adjusted p (exploratory comparisons).")
    subgroup_srm_mismatch: bool | None = Field(None, description="The subgroup's own split fails its SRM check.")
    srm_warning: bool = Field(False, description="The overall split fails its SRM check: not trustworthy.")


class SrmOut(Schema):
    label: str
    treatment: int
    control: int
    expected_control: float | None
    chi2: float | None
    p_value: float | None
    mismatch: bool
    explanation: str
    tier_id: int | None = None
    tier_name: str | None = None


class SrmSectionOut(Schema):
    overall: SrmOut
    by_tier: list[SrmOut]


class TakeUpHorizonOut(Schema):
    months: int
    take_up: float | None
    itt_uplift: float | None
    cace: float | None
    cace_ci_low: float | None
    cace_ci_high: float | None
    naive_users_rate: float | None
    naive_non_users_rate: float | None
    naive_difference: float | None
    explanation: str
    available: bool = True
    srm_warning: bool = False


class TakeUpOut(Schema):
    treatment_members: int
    took_up: int
    rate: float | None
    control_with_programme_use: int
    channels: list[str]
    by_horizon: list[TakeUpHorizonOut]
    explanation: str


class TierBreakdownOut(Schema):
    tier_id: int | None
    tier_name: str
    srm: SrmOut | None = None
    horizons: list[ComparisonOut]


class CohortBreakdownOut(Schema):
    cohort: str
    srm: SrmOut | None = None
    horizons: list[ComparisonOut]


class BandBreakdownOut(Schema):
    band: str
    srm: SrmOut | None = None
    horizons: list[ComparisonOut]


class AgeBreakdownOut(Schema):
    age_band: str
    srm: SrmOut | None = None
    horizons: list[ComparisonOut]


class RegionBreakdownOut(Schema):
    region: str = Field(description="The region recorded on the membership at enrolment.")
    srm: SrmOut | None = None
    horizons: list[ComparisonOut]


class DecisionOut(Schema):
    primary_metric: str
    primary_months: int
    interim: bool = Field(description="Before every member reached the primary horizon: not a decision.")
    decision_day: str | None
    srm_failed: bool
    looks: str = Field(description="How repeated looks are handled: `interim_not_a_decision`.")
    exploratory_comparisons: int
    exploratory_adjustment: str
    explanation: str


class EngagementOut(Schema):
    scoring_run_ids: list[int] = Field([], description="Scoring runs the enrolments used (bands at enrolment).")
    bands: list[BandBreakdownOut]
    explanation: str


class KmPointOut(Schema):
    day: int
    at_risk: int
    events: int
    censored: int
    survival: float | None
    ci_low: float | None
    ci_high: float | None


class KmCurveOut(Schema):
    group: str
    n: int
    events: int
    points: list[KmPointOut]


class AtRiskOut(Schema):
    day: int
    treatment: int
    control: int


class LogrankOut(Schema):
    chi2: float | None
    p_value: float | None
    significant: bool
    p_adjusted: float | None = None
    role: str | None = None
    srm_warning: bool = False
    explanation: str
    available: bool = Field(True, description="False when follow-up or events fall short of the report's minimums.")
    reason: str | None = Field(None, description="What is missing (and until when), when not available.")


class RmstOut(Schema):
    horizon_days: int
    treatment: float | None
    control: float | None
    difference_days: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    significant: bool = False
    p_adjusted: float | None = None
    role: str | None = None
    srm_warning: bool = False
    explanation: str
    available: bool = Field(True, description="False when follow-up or events fall short of the report's minimums.")
    reason: str | None = Field(None, description="What is missing (and until when), when not available.")


class SurvivalChartOut(Schema):
    available: bool
    reason: str | None
    longest_followup_days: int


class SurvivalOut(Schema):
    curves: list[KmCurveOut]
    at_risk: list[AtRiskOut]
    explanation: str
    logrank: LogrankOut | None
    rmst: RmstOut | None
    chart: SurvivalChartOut | None = None


class RevenueMonthOut(Schema):
    month: int
    treatment_per_customer: float | None
    treatment_n: int
    control_per_customer: float | None
    control_n: int


class RevenueEstimateOut(Schema):
    treatment_mean: float | None
    control_mean: float | None
    difference: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    significant: bool = False
    p_adjusted: float | None = None


class CupedOut(Schema):
    months: int
    treatment_n: int
    control_n: int
    theta: float | None = None
    raw: RevenueEstimateOut | None = None
    adjusted: RevenueEstimateOut | None = None
    variance_reduction: float | None = None
    role: str | None = None
    srm_warning: bool = False
    explanation: str
    available: bool = Field(True, description="False when follow-up or events fall short of the report's minimums.")
    reason: str | None = Field(None, description="What is missing (and until when), when not available.")


class RevenueOut(Schema):
    over_time: list[RevenueMonthOut]
    cuped: list[CupedOut]
    explanation: str


class ProgrammeRefOut(Schema):
    id: int
    name: str
    holdout_percent: float


class MinimumsOut(Schema):
    members_per_group: int
    churned: int
    retained: int
    survival_events: int
    followup_days: int
    rmst_days: int
    explanation: str


class GroupsOut(Schema):
    treatment: int
    control: int
    explanation: str


class ImpactReportBodyOut(Schema):
    programme: ProgrammeRefOut
    as_of: str
    horizons: list[int]
    method: str
    minimums: MinimumsOut | None = None
    groups: GroupsOut
    srm: SrmSectionOut
    take_up: TakeUpOut
    retention: list[ComparisonOut]
    by_tier: list[TierBreakdownOut]
    by_cohort: list[CohortBreakdownOut]
    by_age: list[AgeBreakdownOut] = []
    by_region: list[RegionBreakdownOut] = []
    decision: DecisionOut | None = None
    engagement: EngagementOut
    survival: SurvivalOut
    revenue: RevenueOut
    timings: dict[str, float]


class ImpactReportIn(Schema):
    as_of: datetime | None = Field(None, description="Report date (default now).")
    horizons: list[int] = Field([3, 6, 12], min_length=1, max_length=6, description="Months, 1 to 60.")


class ImpactReportOut(Schema):
    id: int
    programme_id: int
    as_of: datetime
    horizons: list[int]
    status: str
    progress: int
    error: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int
    heartbeat_at: datetime
    result: ImpactReportBodyOut | None


class TimelineEntryOut(Schema):
    at: datetime
    kind: str
    summary: str
    ref: str | None = None
