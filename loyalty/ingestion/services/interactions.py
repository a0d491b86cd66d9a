"""Engagement interactions recorded by the programme itself (concierge requests, attended events).

Concierge and events call this explicitly; loyalty never imports them."""

from __future__ import annotations

from datetime import UTC, datetime

from django.db import transaction

from loyalty.customers.models import Channel, Customer, Interaction
from loyalty.segmentation.services.rollups import rollups_count_interaction


@transaction.atomic
def interaction_record(
    *, customer: Customer, channel: str, kind: str, occurred_at: datetime, external_id: str
) -> Interaction:
    """Record one programme interaction; idempotent by `external_id` (e.g. 'concierge-request-42').
    Counts it in the customer's interaction rollup of that day, so the next scoring run sees it."""
    if channel not in (Channel.CONCIERGE, Channel.EVENT):
        raise ValueError(f"Programme interactions use the concierge or event channel, not {channel!r}.")
    interaction, created = Interaction.objects.get_or_create(
        external_id=external_id,
        defaults={"customer": customer, "channel": channel, "kind": kind, "occurred_at": occurred_at},
    )
    if created:
        day = interaction.occurred_at.astimezone(UTC).date()
        rollups_count_interaction(customer_id=interaction.customer_id, day=day, channel=interaction.channel)
    return interaction
