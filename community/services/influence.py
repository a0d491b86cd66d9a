"""The influence metric, computed set-based and written through loyalty's influence service.

influence = Σ over converted referrals in the customer's downstream chain of DISCOUNT^(d-1), where d is the
number of steps from the customer to the referred customer (1 for their own referrals, 0.5 for their
referrals' referrals, 0.25 one step further ...), plus VOTE_WEIGHT × votes received on their visible ideas."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from community.models import Idea, Referral
from community.services.referrals import conversions_mark
from loyalty.segmentation.services.influence import influence_replace

DISCOUNT = 0.5
VOTE_WEIGHT = 0.1
MAX_CHAIN_DEPTH = 12

REFERRAL = Referral._meta.db_table
IDEA = Idea._meta.db_table


def influence_sql() -> tuple[str, list]:
    """SELECT customer_id, score, referral_credit, votes_received for every customer with any influence."""
    sql = f"""
        WITH RECURSIVE up (ancestor, weight, depth) AS (
            SELECT r.referrer_id, CAST(1 AS DOUBLE PRECISION), 1
              FROM {REFERRAL} r WHERE r.converted_at IS NOT NULL
            UNION ALL
            SELECT p.referrer_id, up.weight * %s, up.depth + 1
              FROM up JOIN {REFERRAL} p ON p.referred_id = up.ancestor
             WHERE up.depth < %s
        ),
        parts (customer_id, credit, votes) AS (
            SELECT ancestor, weight, 0 FROM up
            UNION ALL
            SELECT i.author_id, CAST(0 AS DOUBLE PRECISION), i.vote_count
              FROM {IDEA} i WHERE i.hidden = %s AND i.vote_count > 0
        )
        SELECT customer_id,
               SUM(credit) + CAST(SUM(votes) AS DOUBLE PRECISION) * %s AS score,
               SUM(credit) AS referral_credit,
               SUM(votes) AS votes_received
          FROM parts GROUP BY customer_id
    """
    return sql, [DISCOUNT, MAX_CHAIN_DEPTH, False, VOTE_WEIGHT]


def influence_refresh(*, now: datetime | None = None) -> dict:
    """Mark new conversions, then replace every customer's influence (one transaction each)."""
    now = now or timezone.now()
    converted = conversions_mark(now=now)
    sql, params = influence_sql()
    rows = influence_replace(source_sql=sql, params=params, computed_at=now)
    return {"conversions_marked": converted, "customers": rows}
