"""The loyalty app's models, one module per domain; Django and the other apps import them from here."""

from loyalty.customers.models import Channel, Customer, Interaction, RevenueEntry
from loyalty.programmes.models import Enrolment, MemberNotification, Membership, Programme, Tier, TierChange
from loyalty.retention.models import ImpactReport, RetentionOutcome
from loyalty.segmentation.models import (
    CustomerInfluence,
    CustomerMetrics,
    InteractionDayRollup,
    RevenueDayRollup,
    RollupBatch,
    ScoringModel,
    ScoringRun,
    ScoringState,
    Segment,
    SegmentMember,
    SegmentRun,
)

__all__ = [
    "Channel",
    "Customer",
    "CustomerInfluence",
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
    "RollupBatch",
    "ScoringModel",
    "ScoringRun",
    "ScoringState",
    "Segment",
    "SegmentMember",
    "SegmentRun",
    "Tier",
    "TierChange",
]
