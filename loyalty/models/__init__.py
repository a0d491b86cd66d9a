from loyalty.models.customers import Channel, Customer, Interaction, RevenueEntry
from loyalty.models.programmes import Enrolment, MemberNotification, Membership, Programme, Tier, TierChange
from loyalty.models.retention import ImpactReport, RetentionOutcome
from loyalty.models.scoring import CustomerMetrics, ScoringModel, ScoringRun
from loyalty.models.segments import Segment, SegmentMember, SegmentRun

__all__ = [
    "Channel",
    "Customer",
    "CustomerMetrics",
    "Enrolment",
    "ImpactReport",
    "Interaction",
    "MemberNotification",
    "Membership",
    "Programme",
    "RetentionOutcome",
    "RevenueEntry",
    "ScoringModel",
    "ScoringRun",
    "Segment",
    "SegmentMember",
    "SegmentRun",
    "Tier",
    "TierChange",
]
