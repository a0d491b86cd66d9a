"""Retention outcomes: append-only facts about whether a member (either group) stayed.

Three ways in:
- `outcomes_record(rows=..., source=...)`: a batch from the ingestion API or a file import. All-or-nothing:
  every bad row is named (row index, field, message) and nothing is written.
- `outcomes_derive_for_churned(customer_ids=...)`: called when customers turn churned; one set-based
  INSERT ... SELECT appends a `churned` outcome for each live membership.
- Corrections: a row with `supersedes` (id or external id of an earlier outcome of the same membership).
  The old row stays; reports read only outcomes that nothing supersedes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from core.errors import ValidationFailed
from loyalty.customers.models import Customer
from loyalty.programmes.models import Membership
from loyalty.retention.models import RetentionOutcome

MAX_FUTURE_SKEW = timedelta(minutes=5)
LIVE_STATUSES = (Membership.Status.ACTIVE, Membership.Status.HOLDOUT)


@dataclass(frozen=True)
class OutcomeRow:
    """One outcome to record. The membership is named by `membership_id`, or by `programme_id` plus the
    customer's CRM id `customer_external_id`. `supersedes_id` / `supersedes_external_id` name the outcome
    this row corrects."""

    observed_at: datetime
    outcome: str
    external_id: str | None = None
    membership_id: int | None = None
    programme_id: int | None = None
    customer_external_id: str | None = None
    revenue_change: Decimal | None = None
    intends_to_stay: bool | None = None
    supersedes_id: int | None = None
    supersedes_external_id: str | None = None

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> OutcomeRow:
        return cls(**{name: data.get(name) for name in cls.__dataclass_fields__})


@dataclass
class RecordResult:
    received: int
    created: list[RetentionOutcome]
    unchanged: list[RetentionOutcome]
    ids: list[int]  # per batch row, in order: the new or the already recorded outcome


def _same(existing: RetentionOutcome, row: OutcomeRow, membership_id: int, supersedes_pk: int | None) -> bool:
    return (
        existing.membership_id == membership_id
        and existing.observed_at == row.observed_at
        and existing.outcome == row.outcome
        and existing.revenue_change == (Decimal(row.revenue_change) if row.revenue_change is not None else None)
        and existing.intends_to_stay == row.intends_to_stay
        and existing.supersedes_id == supersedes_pk
    )


@transaction.atomic
def outcomes_record(
    *, rows: Sequence[OutcomeRow], source: str, now: datetime | None = None, row_labels: Sequence[str] | None = None
) -> RecordResult:
    """Validate the whole batch, then append every new outcome in one bulk insert.

    A row whose `external_id` is already recorded with identical content is `unchanged` (a resent feed);
    with different content it is an error (a correction must be a new row that supersedes the old one).
    `row_labels` names the rows in errors (default `rows.<index>`; file import passes `line <n>`)."""
    now = now or timezone.now()
    labels = list(row_labels) if row_labels is not None else [f"rows.{i}" for i in range(len(rows))]
    errors: dict[str, list[str]] = {}

    bad_rows: set[int] = set()

    def bad(index: int, field: str, message: str) -> None:
        bad_rows.add(index)
        errors.setdefault(f"{labels[index]}.{field}" if labels[index] else field, []).append(message)

    # One query per kind of lookup, whatever the batch size.
    ids = {r.membership_id for r in rows if r.membership_id is not None}
    by_id = {m.pk: m for m in Membership.objects.filter(pk__in=ids).only("pk", "enrolled_at", "programme_id")}
    pairs = {(r.programme_id, r.customer_external_id) for r in rows if r.membership_id is None}
    by_pair: dict[tuple[int, str], Membership] = {}
    if pairs:
        ext_ids = {p[1] for p in pairs if p[1]}
        prog_ids = {p[0] for p in pairs if p[0] is not None}
        for m in (
            Membership.objects.filter(programme_id__in=prog_ids, customer__external_id__in=ext_ids)
            .only("pk", "enrolled_at", "programme_id", "customer__external_id")
            .select_related("customer")
        ):
            by_pair[(m.programme_id, m.customer.external_id)] = m
    sup_ids = {r.supersedes_id for r in rows if r.supersedes_id is not None}
    sup_ext = {r.supersedes_external_id for r in rows if r.supersedes_external_id}
    own_ext = {r.external_id for r in rows if r.external_id}
    targets = RetentionOutcome.objects.filter(pk__in=sup_ids) | RetentionOutcome.objects.filter(
        external_id__in=sup_ext | own_ext
    )
    target_rows = list(targets.only("pk", "external_id", "membership_id", "observed_at", "outcome"))
    outcomes_by_pk = {o.pk: o for o in target_rows}
    outcomes_by_ext = {o.external_id: o for o in target_rows if o.external_id}
    already_superseded = set(
        RetentionOutcome.objects.filter(supersedes_id__in=list(outcomes_by_pk)).values_list("supersedes_id", flat=True)
    )

    seen_ext: dict[str, int] = {}
    claimed: dict[int, int] = {}
    to_create: list[RetentionOutcome] = []
    unchanged: list[RetentionOutcome] = []
    slots: list[RetentionOutcome] = []
    for index, row in enumerate(rows):
        # The membership.
        membership = None
        if row.membership_id is not None:
            membership = by_id.get(row.membership_id)
            if membership is None:
                bad(index, "membership_id", f"Unknown membership {row.membership_id}.")
        elif row.programme_id is not None and row.customer_external_id:
            membership = by_pair.get((row.programme_id, row.customer_external_id))
            if membership is None:
                bad(
                    index,
                    "customer_external_id",
                    f"Customer {row.customer_external_id!r} has no membership in programme {row.programme_id}.",
                )
        else:
            bad(index, "membership_id", "Give membership_id, or programme_id and customer_external_id.")
        # Values.
        if row.outcome not in RetentionOutcome.Outcome.values:
            bad(index, "outcome", f"Must be one of {', '.join(RetentionOutcome.Outcome.values)}.")
        if row.observed_at is None or timezone.is_naive(row.observed_at):
            bad(index, "observed_at", "A timezone-aware date-time is required.")
        elif row.observed_at > now + MAX_FUTURE_SKEW:
            bad(index, "observed_at", "Lies in the future.")
        elif membership is not None and row.observed_at < membership.enrolled_at:
            bad(index, "observed_at", "Lies before the membership's enrolment.")
        if row.revenue_change is not None and abs(Decimal(row.revenue_change)) >= Decimal("1e12"):
            bad(index, "revenue_change", "Out of range.")
        if row.external_id is not None:
            if not row.external_id.strip() or len(row.external_id) > 64:
                bad(index, "external_id", "Must be 1 to 64 characters.")
            elif row.external_id in seen_ext:
                bad(index, "external_id", f"Repeats row {labels[seen_ext[row.external_id]]}.")
            seen_ext.setdefault(row.external_id, index)
        # The outcome it corrects.
        target = None
        if row.supersedes_id is not None or row.supersedes_external_id:
            target = (
                outcomes_by_pk.get(row.supersedes_id)
                if row.supersedes_id is not None
                else outcomes_by_ext.get(row.supersedes_external_id)
            )
            field = "supersedes_id" if row.supersedes_id is not None else "supersedes_external_id"
            if target is None:
                bad(index, field, "Unknown outcome.")
            elif membership is not None and target.membership_id != membership.pk:
                bad(index, field, "The superseded outcome belongs to another membership.")
        supersedes_pk = target.pk if target is not None else None
        # A resent row (same external id) is fine if identical.
        existing = outcomes_by_ext.get(row.external_id) if row.external_id else None
        if existing is not None and membership is not None:
            if _same(existing, row, membership.pk, supersedes_pk):
                unchanged.append(existing)
                slots.append(existing)
                continue
            bad(index, "external_id", "Already recorded with other values; send a correction that supersedes it.")
        if supersedes_pk is not None:
            if supersedes_pk in already_superseded:
                bad(index, "supersedes_id", "That outcome was already superseded; correct the latest one.")
            elif supersedes_pk in claimed:
                bad(index, "supersedes_id", f"Row {labels[claimed[supersedes_pk]]} supersedes it too.")
            claimed.setdefault(supersedes_pk, index)
        if membership is not None and not errors:
            to_create.append(
                new := RetentionOutcome(
                    membership_id=membership.pk,
                    observed_at=row.observed_at,
                    outcome=row.outcome,
                    source=source,
                    revenue_change=row.revenue_change,
                    intends_to_stay=row.intends_to_stay,
                    external_id=row.external_id,
                    supersedes_id=supersedes_pk,
                )
            )
            slots.append(new)
    if errors:
        raise ValidationFailed(
            f"{len(bad_rows)} of {len(rows)} rows are not valid; nothing was recorded.",
            code="outcome_rows_invalid",
            fields=errors,
        )
    # Both SQLite and PostgreSQL return the new primary keys from a bulk insert.
    created = RetentionOutcome.objects.bulk_create(to_create, batch_size=1000)
    return RecordResult(received=len(rows), created=created, unchanged=unchanged, ids=[o.pk for o in slots])


@transaction.atomic
def outcomes_derive_for_churned(*, customer_ids: Sequence[int], now: datetime | None = None) -> int:
    """Append a `churned` outcome (source `derived`, observed at the customer's `churned_at`) for every live
    membership (active or holdout) of these churned customers, in one INSERT ... SELECT.

    Skipped: memberships that already have a non-superseded `churned` outcome (e.g. the feed sent it),
    and churn dates before enrolment. Safe to run twice. Returns the number of rows written. `now` is the
    recorded_at of the new rows (default now)."""
    ids = sorted({int(i) for i in customer_ids})
    if not ids:
        return 0
    outcome_table = RetentionOutcome._meta.db_table
    membership_table = Membership._meta.db_table
    customer_table = Customer._meta.db_table
    now = connection.ops.adapt_datetimefield_value(now or timezone.now())
    total = 0
    chunk = 5000  # stay below SQLite's bound-parameter limit
    with connection.cursor() as cursor:
        for start in range(0, len(ids), chunk):
            part = ids[start : start + chunk]
            placeholders = ", ".join(["%s"] * len(part))
            cursor.execute(
                f"""
                INSERT INTO {outcome_table} (membership_id, observed_at, outcome, source, recorded_at)
                SELECT m.id, c.churned_at, 'churned', 'derived', %s
                FROM {membership_table} m
                JOIN {customer_table} c ON c.id = m.customer_id
                WHERE m.customer_id IN ({placeholders})
                  AND m.status IN ('active', 'holdout')
                  AND c.status = 'churned' AND c.churned_at IS NOT NULL
                  AND c.churned_at >= m.enrolled_at
                  AND NOT EXISTS (
                    SELECT 1 FROM {outcome_table} o
                    WHERE o.membership_id = m.id AND o.outcome = 'churned'
                      AND NOT EXISTS (SELECT 1 FROM {outcome_table} s WHERE s.supersedes_id = o.id)
                  )
                """,
                [now, *part],
            )
            total += cursor.rowcount
    return total


def outcome_record_manual(
    *,
    membership_id: int,
    observed_at: datetime,
    outcome: str,
    revenue_change: Decimal | None = None,
    intends_to_stay: bool | None = None,
    supersedes_id: int | None = None,
    now: datetime | None = None,
) -> RetentionOutcome:
    """A manager records one outcome or corrects one (`supersedes_id`). Same rules as a batch row."""
    row = OutcomeRow(
        membership_id=membership_id,
        observed_at=observed_at,
        outcome=outcome,
        revenue_change=revenue_change,
        intends_to_stay=intends_to_stay,
        supersedes_id=supersedes_id,
    )
    result = outcomes_record(rows=[row], source=RetentionOutcome.Source.MANUAL, now=now, row_labels=[""])
    return result.created[0]
