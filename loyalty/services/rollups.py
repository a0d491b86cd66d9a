"""Per-customer rollups that scoring reads instead of raw rows. (Owned by the scoring issue.)"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date


def rollups_refresh_interactions(*, customer_ids: Sequence[int] | None, date_from: date, date_to: date) -> None:
    """Recompute interaction rollups of `customer_ids` (None = everyone) for days date_from..date_to from the
    raw interactions, set-based. Ingestion calls this after writing interactions. Placeholder until the
    scoring issue lands its rollup tables."""


def rollups_refresh_revenue(*, customer_ids: Sequence[int] | None, date_from: date, date_to: date) -> None:
    """Recompute revenue rollups of `customer_ids` (None = everyone) for periods date_from..date_to.
    Ingestion calls this after writing revenue entries. Placeholder until the scoring issue lands."""
