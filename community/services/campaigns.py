"""Ambassador campaigns: creation, nomination from a segment run (capped; active treatment members only), the
reproducible holdout of nominees, and what each ambassador received."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from community.models import Campaign, Nominee
from core.errors import BusinessRuleError, Conflict, NotFound, ValidationFailed
from loyalty.customers.models import Customer
from loyalty.programmes.models import Membership, Programme
from loyalty.programmes.services.assignment import assignment_bucket_int, holdout_cutoff
from loyalty.segmentation.models import RunStatus, SegmentMember, SegmentRun


@transaction.atomic
def campaign_create(
    *,
    programme_id: int,
    name: str,
    description: str = "",
    starts_at: datetime,
    ends_at: datetime,
    holdout_percent: Decimal = Decimal(0),
    max_ambassadors: int,
    open_to_members: bool = False,
    created_by=None,
) -> Campaign:
    errors: dict[str, list[str]] = {}
    if ends_at <= starts_at:
        errors["ends_at"] = ["Must be after starts_at."]
    if not 0 <= holdout_percent <= 50:
        errors["holdout_percent"] = ["From 0 to 50."]
    if max_ambassadors < 1:
        errors["max_ambassadors"] = ["At least 1."]
    if errors:
        raise ValidationFailed("The campaign is not valid.", fields=errors)
    programme = Programme.objects.filter(pk=programme_id).first()
    if programme is None:
        raise NotFound("Programme not found.", code="programme_not_found")
    return Campaign.objects.create(
        programme=programme,
        name=name.strip(),
        description=description,
        starts_at=starts_at,
        ends_at=ends_at,
        holdout_percent=holdout_percent,
        max_ambassadors=max_ambassadors,
        open_to_members=open_to_members,
        created_by=created_by,
    )


def nominee_group(campaign: Campaign, customer_id: int) -> tuple[str, int]:
    """The programme's reproducible assignment, salted by the campaign: (group, bucket)."""
    bucket = assignment_bucket_int(campaign.assignment_seed, customer_id)
    held_out = bucket < holdout_cutoff(campaign.holdout_percent)
    return (Nominee.Group.HELD_OUT if held_out else Nominee.Group.AMBASSADOR), bucket


@transaction.atomic
def nominees_add(*, campaign_id: int, segment_run_id: int, cap: int | None = None, now: datetime | None = None) -> dict:
    """Nominate the best-ranked members of a segment run, at most `cap` now and never beyond the campaign's
    `max_ambassadors` in all. Only customers with an active treatment membership of the campaign's programme
    (and still active customers) qualify; control customers, ended members and people already nominated are
    skipped. Each nominee is an ambassador or held out by the campaign's reproducible split."""
    now = now or timezone.now()
    campaign = Campaign.objects.select_for_update().select_related("programme").filter(pk=campaign_id).first()
    if campaign is None:
        raise NotFound("Campaign not found.", code="campaign_not_found")
    if now >= campaign.ends_at:
        raise Conflict("The campaign has ended.", code="campaign_ended")
    run = SegmentRun.objects.filter(pk=segment_run_id).first()
    if run is None:
        raise NotFound("Segment run not found.", code="segment_run_not_found")
    if run.status != RunStatus.SUCCEEDED:
        raise BusinessRuleError("The segment run has not finished successfully.", code="segment_run_not_succeeded")
    if cap is not None and cap < 1:
        raise ValidationFailed("The cap is at least 1.", fields={"cap": ["At least 1."]})
    existing = Nominee.objects.filter(campaign=campaign).count()
    room = campaign.max_ambassadors - existing
    wanted = room if cap is None else min(cap, room)
    result = {"campaign_id": campaign.pk, "nominated": 0, "ambassadors": 0, "held_out": 0, "room_left": room}
    if wanted <= 0:
        return result
    memberships = Membership.objects.filter(
        programme_id=campaign.programme_id,
        group=Membership.Group.TREATMENT,
        status=Membership.Status.ACTIVE,
        customer__status=Customer.Status.ACTIVE,
    )
    candidates = list(
        SegmentMember.objects.filter(run=run, customer_id__in=memberships.values("customer_id"))
        .exclude(customer_id__in=Nominee.objects.filter(campaign=campaign).values("customer_id"))
        .order_by("rank")
        .values_list("customer_id", "rank")[:wanted]
    )
    member_of = dict(memberships.filter(customer_id__in=[c for c, _ in candidates]).values_list("customer_id", "id"))
    rows = []
    for customer_id, rank in candidates:
        group, bucket = nominee_group(campaign, customer_id)
        rows.append(
            Nominee(
                campaign=campaign,
                customer_id=customer_id,
                membership_id=member_of[customer_id],
                group=group,
                assignment_bucket=bucket,
                source_run=run,
                rank=rank,
                nominated_at=now,
            )
        )
    Nominee.objects.bulk_create(rows)
    result["nominated"] = len(rows)
    result["ambassadors"] = sum(1 for r in rows if r.group == Nominee.Group.AMBASSADOR)
    result["held_out"] = len(rows) - result["ambassadors"]
    result["room_left"] = room - len(rows)
    return result


@transaction.atomic
def nominee_record_received(*, nominee_id: int, received: str, now: datetime | None = None) -> Nominee:
    """Record what an ambassador received. Held-out nominees receive nothing: 409 `held_out_nominee`."""
    nominee = Nominee.objects.select_for_update().filter(pk=nominee_id).first()
    if nominee is None:
        raise NotFound("Nominee not found.", code="nominee_not_found")
    if nominee.group != Nominee.Group.AMBASSADOR:
        raise Conflict("A held-out nominee receives nothing.", code="held_out_nominee")
    if not received.strip():
        raise ValidationFailed("Say what was received.", fields={"received": ["Must not be blank."]})
    nominee.received, nominee.received_at = received.strip(), now or timezone.now()
    nominee.save(update_fields=["received", "received_at"])
    return nominee
