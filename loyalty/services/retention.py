"""Retention outcomes. (Owned by the retention issue.)"""

from __future__ import annotations

from collections.abc import Sequence


def outcomes_derive_for_churned(*, customer_ids: Sequence[int]) -> None:
    """Append a `churned` outcome (source `derived`) for every live membership of these customers.
    Placeholder until the retention issue lands."""
