"""Engagement interactions recorded by the programme itself (concierge requests, attended events, community
actions on the social channel: ideas, votes, comments, poll answers, converted referrals).

Concierge, events and community call this explicitly; loyalty never imports them."""

from __future__ import annotations

from datetime import UTC, datetime

from django.db import connection, connections, transaction

from core.rows import Statement
from loyalty.customers.models import Channel, Customer, Interaction
from loyalty.segmentation.services.rollups import rollups_count_interaction

PROGRAMME_CHANNELS = (Channel.CONCIERGE, Channel.EVENT, Channel.SOCIAL)


def _insert_sql(using: str) -> str:
    quote = connections[using].ops.quote_name
    columns = ", ".join(quote(Interaction._meta.get_field(name).column) for name in _INSERTED)
    return (
        f"INSERT INTO {quote(Interaction._meta.db_table)} ({columns}) VALUES ({', '.join(['%s'] * len(_INSERTED))}) "
        f"ON CONFLICT ({quote('external_id')}) DO NOTHING RETURNING {quote(Interaction._meta.pk.column)}"
    )


_INSERTED = ("customer", "channel", "kind", "occurred_at", "external_id")
_INSERT = Statement(_insert_sql, name="interaction_insert")


@transaction.atomic(savepoint=False)
def interaction_record(
    *, customer: Customer, channel: str, kind: str, occurred_at: datetime, external_id: str
) -> Interaction:
    """Record one programme interaction; idempotent by `external_id` (e.g. 'concierge-request-42').
    Counts it in the customer's interaction rollup of that day, so the next scoring run sees it.

    One `INSERT ... ON CONFLICT (external_id) DO NOTHING RETURNING id` decides whether the interaction is new (a
    concurrent recording of the same id inserts nothing, without an error to recover from), so no savepoint is
    needed: inside the caller's transaction the interaction and its rollup commit or roll back with it."""
    if channel not in PROGRAMME_CHANNELS:
        raise ValueError(f"Programme interactions use the concierge, event or social channel, not {channel!r}.")
    if channel == Channel.SOCIAL and not external_id.startswith("community-"):
        # The social channel is also fed by the CRM; programme-made social rows are the community's, named so.
        raise ValueError("Programme social interactions are community actions with an id 'community-...'.")
    adapt = connection.ops.adapt_datetimefield_value
    inserted = _INSERT.fetchone([customer.pk, channel, kind, adapt(occurred_at), external_id])
    if inserted is None:
        return Interaction.objects.get(external_id=external_id)
    interaction = Interaction(
        pk=inserted[0], customer=customer, channel=channel, kind=kind, occurred_at=occurred_at, external_id=external_id
    )
    interaction._state.adding = False
    day = occurred_at.astimezone(UTC).date()
    rollups_count_interaction(customer_id=customer.pk, day=day, channel=channel)
    return interaction
