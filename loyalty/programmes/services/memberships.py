"""Memberships. (Owned by the programmes issue.)"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from django.db import connection, transaction
from django.utils import timezone

from loyalty.customers.models import Customer
from loyalty.programmes.models import Membership, TierChange
from loyalty.programmes.services.tier_sql import table

CHUNK = 500
LIVE = (Membership.Status.ACTIVE, Membership.Status.HOLDOUT)


def _end_where(where_sql: str, params: list, *, now: datetime) -> int:
    """End the live memberships matched by `where_sql` (over alias m), set-based: a TierChange `ended` for
    treatment members, then status `ended`. Returns how many ended."""
    qn = connection.ops.quote_name
    m_t, tc_t = table(Membership), table(TierChange)
    now_db = connection.ops.adapt_datetimefield_value(now)
    live = f"m.status IN ('{Membership.Status.ACTIVE}', '{Membership.Status.HOLDOUT}')"
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {tc_t} (membership_id, from_tier_id, to_tier_id, reason, note, actor_id, at) "
            f"SELECT m.id, m.tier_id, NULL, 'ended', 'customer churned', NULL, %s FROM {m_t} m "
            f"WHERE {live} AND m.{qn('group')} = 'treatment' AND {where_sql}",
            [now_db, *params],
        )
        cursor.execute(
            f"UPDATE {m_t} SET status = 'ended', ended_at = %s WHERE id IN "
            f"(SELECT m.id FROM {m_t} m WHERE {live} AND {where_sql})",
            [now_db, *params],
        )
        return cursor.rowcount


@transaction.atomic
def memberships_end_for_churned(*, customer_ids: Sequence[int], now: datetime | None = None) -> int:
    """End (status `ended`) every live membership of these churned customers, in both groups, set-based."""
    now = now or timezone.now()
    ids = sorted({int(i) for i in customer_ids})
    ended = 0
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        ended += _end_where(f"m.customer_id IN ({', '.join(['%s'] * len(chunk))})", chunk, now=now)
    return ended


def memberships_end_churned_in_programme(*, programme_id: int, now: datetime) -> int:
    """Sweep used by re-evaluation: members of the programme whose customer is churned."""
    return _end_where(
        f"m.programme_id = %s AND m.customer_id IN (SELECT c.id FROM {table(Customer)} c WHERE c.status = %s)",
        [programme_id, Customer.Status.CHURNED],
        now=now,
    )
