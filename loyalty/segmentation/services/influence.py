"""The per-customer influence table that segment rules read (field `influence`).

Written set-based by the app that computes it (community): `influence_replace` swaps every row in one
transaction for the rows of a SELECT the caller gives, so a reader sees the old figures or the new ones."""

from __future__ import annotations

from datetime import datetime

from django.db import connection, transaction
from django.utils import timezone

from core.sql import tune_transaction
from loyalty.segmentation.models import CustomerInfluence

TABLE = CustomerInfluence._meta.db_table


@transaction.atomic
def influence_replace(*, source_sql: str, params: list, computed_at: datetime | None = None) -> int:
    """Replace the whole table with the rows of `source_sql`, which selects exactly
    (customer_id, score, referral_credit, votes_received). Returns the rows written."""
    computed_at = computed_at or timezone.now()
    with connection.cursor() as cursor:
        tune_transaction(cursor)
        cursor.execute(f"DELETE FROM {TABLE}")
        cursor.execute(
            f"INSERT INTO {TABLE} (customer_id, score, referral_credit, votes_received, computed_at) "
            f"SELECT s.customer_id, s.score, s.referral_credit, s.votes_received, %s FROM ({source_sql}) s",
            [connection.ops.adapt_datetimefield_value(computed_at), *params],
        )
        return cursor.rowcount
