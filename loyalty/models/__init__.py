from loyalty.models.customers import Channel, Customer, Interaction, RevenueEntry
from loyalty.models.programmes import Membership, Programme, Tier, TierChange
from loyalty.models.retention import RetentionOutcome
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
    "Interaction",
    "InteractionDayRollup",
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
