"""What happens when customers turn churned. Ingestion and file import call `customers_churned` with the
ids of customers whose status changed from active to churned in the batch."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import transaction


@transaction.atomic
def customers_churned(*, customer_ids: Sequence[int]) -> None:
    if not customer_ids:
        return
    from loyalty.programmes.services.memberships import memberships_end_for_churned
    from loyalty.retention.services.outcomes import outcomes_derive_for_churned

    # Record the churn outcome while the memberships are still live, then end them.
    outcomes_derive_for_churned(customer_ids=customer_ids)
    memberships_end_for_churned(customer_ids=customer_ids)
