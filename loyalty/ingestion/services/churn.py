"""What happens when customers turn churned. Ingestion and file import call `customers_churned` with the
ids of customers whose status changed from active to churned in the batch."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from django.db import transaction


@transaction.atomic
def customers_churned(*, customer_ids: Sequence[int], now: datetime | None = None) -> None:
    """`now`: when the churn became known (default now); outcomes are observed at each customer's churned_at."""
    if not customer_ids:
        return
    from loyalty.programmes.services.memberships import memberships_end_for_churned
    from loyalty.retention.services.outcomes import outcomes_derive_for_churned

    # Record the churn outcome while the memberships are still live, then end them.
    outcomes_derive_for_churned(customer_ids=customer_ids, now=now)
    memberships_end_for_churned(customer_ids=customer_ids, now=now)
