"""A plain Python reference of the scoring run, computed straight from raw rows (no SQL, no rollups)."""

from __future__ import annotations

import math
from datetime import date
from decimal import Decimal

from core.sql import day_number, week_of
from loyalty.segmentation.services.scoring import (
    ACTIVITY_SCALE,
    CONTACT,
    engagement_score,
    quantize,
    weeks_in_window,
)


def percent_rank(values: dict[int, float]) -> dict[int, float]:
    """SQL PERCENT_RANK over ascending values: (rows strictly below) / (n - 1)."""
    ordered = sorted(values.values())
    n = len(ordered)
    result = {}
    for key, value in values.items():
        below = sum(1 for v in ordered if v < value)
        result[key] = below / (n - 1) if n > 1 else 0.0
    return result


def reference_metrics(
    *,
    customer_ids: list[int],
    interactions: list[tuple[int, str, date]],
    revenue: list[tuple[int, date, Decimal]],
    model,
    as_of: date,
) -> dict[int, dict]:
    t = day_number(as_of)
    k = math.log(2) / model.half_life_days
    weeks = weeks_in_window(model.engagement_window_days)
    weights = model.channel_weights
    decayed = dict.fromkeys(customer_ids, 0.0)
    active: dict[int, set[int]] = {c: set() for c in customer_ids}
    channels: dict[int, set[str]] = {c: set() for c in customer_ids}
    last: dict[int, int | None] = dict.fromkeys(customer_ids)
    for customer, channel, day in interactions:
        dn = day_number(day)
        if dn > t:
            continue
        decayed[customer] += weights.get(channel, 1.0) * math.exp((dn - t) * k)
        if week_of(dn) > week_of(t) - weeks:
            active[customer].add(week_of(dn))
        if channel in CONTACT and dn > t - model.engagement_window_days:
            channels[customer].add(channel)
        last[customer] = dn if last[customer] is None else max(last[customer], dn)
    revenue_minor = dict.fromkeys(customer_ids, 0)
    for customer, period, amount in revenue:
        if t - model.revenue_window_days < day_number(period) <= t:
            revenue_minor[customer] += int(amount * 100)
    decayed = {c: quantize(v, ACTIVITY_SCALE) for c, v in decayed.items()}
    activity_pct = percent_rank(decayed)
    revenue_pct = percent_rank({c: float(v) for c, v in revenue_minor.items()})
    by_revenue = sorted(customer_ids, key=lambda c: (-revenue_minor[c], c))
    result = {}
    for customer in customer_ids:
        result[customer] = {
            "revenue_minor": revenue_minor[customer],
            "revenue_rank": by_revenue.index(customer) + 1,
            "revenue_percentile": 100.0 * revenue_pct[customer],
            "channels_used": len(channels[customer]),
            "active_weeks": len(active[customer]),
            "days_since_last": None if last[customer] is None else t - last[customer],
            "decayed_activity": decayed[customer],
            "engagement_score": engagement_score(
                channels_used=len(channels[customer]),
                active_weeks=len(active[customer]),
                weeks=weeks,
                activity_percentile=activity_pct[customer],
                breadth_weight=model.breadth_weight,
                frequency_weight=model.frequency_weight,
                recency_weight=model.recency_weight,
            ),
        }
    engagement_pct = percent_rank({c: r["engagement_score"] for c, r in result.items()})
    for customer, row in result.items():
        row["engagement_percentile"] = 100.0 * engagement_pct[customer]
    return result
