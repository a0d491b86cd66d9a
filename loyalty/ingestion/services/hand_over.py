"""Hand-over of freshly ingested customers to the apps above loyalty, without loyalty importing them.

An app registers `fn(customer_ids: list[int])` from its AppConfig.ready() (community attributes referral
codes that arrive in `attributes.referral_code`). Ingestion calls every registered function inside the batch
transaction, after the rows are written, with the ids of the batch's customers that carry a referral code; a
function should only record work (core.outbox.enqueue) so that the batch stays fast and all-or-nothing."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from loyalty.customers.models import Customer

REFERRAL_CODE_ATTRIBUTE = "referral_code"

CustomersIngested = Callable[[list[int]], None]
_HANDLERS: list[CustomersIngested] = []


def register_customers_ingested(fn: CustomersIngested) -> CustomersIngested:
    """Add a handler (idempotent)."""
    if fn not in _HANDLERS:
        _HANDLERS.append(fn)
    return fn


def unregister_customers_ingested(fn: CustomersIngested) -> None:
    if fn in _HANDLERS:
        _HANDLERS.remove(fn)


def customers_ingested(rows: Sequence[dict]) -> None:
    """Tell the handlers about the batch's customers that carry a referral code (one query when some do)."""
    refs = [
        row["external_id"]
        for row in rows
        if isinstance(row.get("attributes"), dict) and row["attributes"].get(REFERRAL_CODE_ATTRIBUTE)
    ]
    if not refs or not _HANDLERS:
        return
    ids = sorted(Customer.objects.filter(external_id__in=refs).values_list("id", flat=True))
    for handler in list(_HANDLERS):
        handler(ids)
