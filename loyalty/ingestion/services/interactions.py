"""Engagement interactions recorded by the programme itself (concierge requests, attended events, community
actions on the social channel: ideas, votes, comments, poll answers, converted referrals).

Concierge, events and community call this explicitly; loyalty never imports them."""

from __future__ import annotations

from datetime import UTC, datetime

from django.db import transaction

from loyalty.customers.models import Channel, Customer, Interaction
from loyalty.segmentation.services.rollups import rollups_count_interaction

PROGRAMME_CHANNELS = (Channel.CONCIERGE, Channel.EVENT, Channel.SOCIAL)


@transaction.atomic
def interaction_record(
    *, customer: Customer, channel: str, kind: str, occurred_at: datetime, external_id: str
) -> Interaction:
    """Record one programme interaction; idempotent by `external_id` (e.g. 'concierge-request-42').
    Counts it in the customer's interaction rollup of that day, so the next scoring run sees it."""
    if channel not in PROGRAMME_CHANNELS:
        raise ValueError(f"Programme interactions use the concierge, event or social channel, not {channel!r}.")
    if channel == Channel.SOCIAL and not external_id.startswith("community-"):
        # The social channel is also fed by the CRM; programme-made social rows are the community's, named so.
        raise ValueError("Programme social interactions are community actions with an id 'community-...'.")
    interaction, created = Interaction.objects.get_or_create(
        external_id=external_id,
        defaults={"customer": customer, "channel": channel, "kind": kind, "occurred_at": occurred_at},
    )
    if created:
        day = interaction.occurred_at.astimezone(UTC).date()
        rollups_count_interaction(customer_id=interaction.customer_id, day=day, channel=interaction.channel)
    return interaction
