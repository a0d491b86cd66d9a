"""Memberships. (Owned by the programmes issue.)"""

from __future__ import annotations

from collections.abc import Sequence


def memberships_end_for_churned(*, customer_ids: Sequence[int]) -> None:
    """End (status `ended`) every live membership of these churned customers, in both groups, set-based.
    Placeholder until the programmes issue lands."""
