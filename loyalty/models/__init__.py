from loyalty.models.customers import Channel, Customer, Interaction, RevenueEntry
from loyalty.models.programmes import Enrolment, MemberNotification, Membership, Programme, Tier, TierChange
from loyalty.models.retention import ImpactReport, RetentionOutcome
from loyalty.models.scoring import (
    CustomerMetrics,
    InteractionDayRollup,
    RevenueDayRollup,
    ScoringModel,
    ScoringRun,
    ScoringState,
)
from loyalty.models.segments import Segment, SegmentMember, SegmentRun

__all__ = [
    "Channel",
    "Customer",
    "CustomerMetrics",
    "Enrolment",
    "ImpactReport",
    "Interaction",
    "InteractionDayRollup",
    "MemberNotification",
    "Membership",
    "Programme",
    "RetentionOutcome",
    "RevenueDayRollup",
    "RevenueEntry",
    "ScoringModel",
    "ScoringRun",
    "ScoringState",
    "Segment",
    "SegmentMember",
    "SegmentRun",
    "Tier",
    "TierChange",
]
