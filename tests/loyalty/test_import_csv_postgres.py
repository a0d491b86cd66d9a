"""The PostgreSQL CSV path of the file import (ingest_csv_pg): it writes exactly what the row validator's path
writes, and hands over (writing nothing) every file it does not fully understand."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from loyalty.ingestion.services.files import FileRejected, file_import
from loyalty.ingestion.services.ingest import ingest_csv_pg, ingest_rows
from loyalty.ingestion.services.validation import rows_validate
from loyalty.models import Interaction, InteractionDayRollup, RevenueDayRollup, RevenueEntry
from loyalty.segmentation.services.rollups import rollups_apply_pending
from tests.factories import CustomerFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

HEADER = ["external_id", "customer_external_id", "channel", "occurred_at", "kind"]
ROWS = [
    ["i1", "C1", "phone", "2025-03-01T10:00:00Z", "call"],
    ["i2", "C1", "app", "2025-03-01T23:30:00.25-02:00", ""],
    ["i3", "C2", "social", "2025-02-28T00:00:00+05:30", "like it"],
]


def csv_body(rows: list[list[str]]) -> bytes:
    return "".join(",".join(row) + "\n" for row in rows).encode()


def stored(model, prefix: str, fields: list[str]) -> list[tuple]:
    return [
        (ext.removeprefix(prefix), *rest)
        for ext, *rest in model.objects.filter(external_id__startswith=prefix)
        .order_by("external_id")
        .values_list("external_id", *fields)
    ]


@pytest.fixture
def customers(db):
    return CustomerFactory(external_id="C1"), CustomerFactory(external_id="C2")


def test_interactions_are_written_as_the_validator_path_writes_them(customers):
    result = ingest_csv_pg(kind="interactions", header=HEADER, body=csv_body([[f"db-{r[0]}", *r[1:]] for r in ROWS]))
    assert (result.rows, result.created, result.updated, result.unchanged) == (3, 3, 0, 0)
    raw = [dict(zip(HEADER, [f"py-{r[0]}", *r[1:]], strict=True)) for r in ROWS]
    ingest_rows(
        kind="interactions", rows=rows_validate("interactions", [{k: v for k, v in r.items() if v} for r in raw])
    )
    fields = ["customer_id", "channel", "occurred_at", "kind"]
    assert stored(Interaction, "db-", fields) == stored(Interaction, "py-", fields)
    assert stored(Interaction, "db-", fields)[1] == (
        "i2",
        customers[0].id,
        "app",
        datetime(2025, 3, 2, 1, 30, 0, 250000, tzinfo=UTC),
        "",
    )
    rollups_apply_pending()  # as every reader of the rollups does (batches of new rows apply after commit)
    cells = dict(((r.customer_id, r.day, r.channel), r.count) for r in InteractionDayRollup.objects.all())
    assert cells == {
        (customers[0].id, date(2025, 3, 1), "phone"): 2,
        (customers[0].id, date(2025, 3, 2), "app"): 2,
        (customers[1].id, date(2025, 2, 27), "social"): 2,
    }


def test_revenue_with_defaults_for_absent_columns(customers):
    header = ["external_id", "customer_external_id", "period", "amount"]
    result = ingest_csv_pg(kind="revenue", header=header, body=b"r1,C1,2025-01-01,000012.5\nr2,C2,2025-02-01,0\n")
    assert (result.rows, result.created) == (2, 2)
    assert stored(RevenueEntry, "r", ["customer_id", "period", "amount", "currency", "kind"]) == [
        ("1", customers[0].id, date(2025, 1, 1), Decimal("12.50"), "EUR", ""),
        ("2", customers[1].id, date(2025, 2, 1), Decimal("0.00"), "EUR", ""),
    ]
    rollups_apply_pending()
    assert list(RevenueDayRollup.objects.order_by("day").values_list("amount_minor", flat=True)) == [1250, 0]


def test_resending_the_file_changes_nothing_and_changed_rows_are_updated(customers):
    body = csv_body(ROWS)
    ingest_csv_pg(kind="interactions", header=HEADER, body=body)
    again = ingest_csv_pg(kind="interactions", header=HEADER, body=body)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 3)
    changed = ingest_csv_pg(kind="interactions", header=HEADER, body=b"i1,C2,store,2025-03-04T10:00:00Z,\n")
    assert (changed.created, changed.updated) == (0, 1)
    assert Interaction.objects.get(external_id="i1").customer_id == customers[1].id
    rollups_apply_pending()
    assert not InteractionDayRollup.objects.filter(customer=customers[0], channel="phone").exists()
    assert InteractionDayRollup.objects.get(customer=customers[1], channel="store").count == 1


@pytest.mark.parametrize(
    "row",
    [
        ["i9", "C1", "phone", "2025-03-01 10:00:00Z", ""],  # valid for the validator, not in the strict subset
        ["i9", "C1", "phone", "2025-03-01T10:00:00+0530", ""],
        ["i9", "C1", "phone", "2025-03-01T10:00:00Z", "Anruf \u260e"],
        ["i9", "C1", "phone", "2025-03-01T10:00:00Z", " padded "],
        ["i9", "C1", "phone", "2025-02-29T10:00:00Z", ""],  # no such day
        ["i9", "C1", "fax", "2025-03-01T10:00:00Z", ""],
        ["i9", "NOPE", "phone", "2025-03-01T10:00:00Z", ""],
        ["i1", "C1", "phone", "2025-03-01T10:00:00Z", ""],  # repeats i1
        ["i9", "C1", "phone", "2025-03-01T10:00:00Z"],  # a value short
        ["i9", "", "phone", "2025-03-01T10:00:00Z", ""],
        # The timestamp's boundaries: hour 24, second 60, 31 April, a month 13 (the cast fails), a letter, a
        # year before 1900, 7 decimals, an offset PostgreSQL refuses (past 15:59), a suffix after Z.
        ["i9", "C1", "phone", "2025-03-01T24:00:00Z", ""],
        ["i9", "C1", "phone", "2025-03-01T23:59:60Z", ""],
        ["i9", "C1", "phone", "2025-04-31T10:00:00Z", ""],
        ["i9", "C1", "phone", "2025-13-01T10:00:00Z", ""],
        ["i9", "C1", "phone", "2025-03-01T1a:00:00Z", ""],
        ["i9", "C1", "phone", "1899-12-31T10:00:00Z", ""],
        ["i9", "C1", "phone", "2025-03-01T10:00:00.1234567Z", ""],
        ["i9", "C1", "phone", "2025-03-01T10:00:00+16:00", ""],
        ["i9", "C1", "phone", "2025-03-01T10:00:00.5-23:59", ""],
        ["i9", "C1", "phone", "2025-03-01T10:00:00ZZ", ""],
        ["i9", "C1", "phone", "2025-03-01T10:00:00", ""],
        # Lengths (a plain file is checked by length only).
        ["x" * 65, "C1", "phone", "2025-03-01T10:00:00Z", ""],
        ["i9", "C1", "phone", "2025-03-01T10:00:00Z", "k" * 65],
    ],
)
@pytest.mark.parametrize("plain", [True, False], ids=["plain", "not-plain"])
def test_files_outside_the_strict_subset_are_handed_over_untouched(customers, row, plain):
    # ROWS[2] has a space in its kind: the file is not plain, and the general checks apply.
    body = csv_body([ROWS[0], row] if plain else [ROWS[0], ROWS[2], row])
    assert ingest_csv_pg(kind="interactions", header=HEADER, body=body) is None
    assert Interaction.objects.count() == 0
    assert InteractionDayRollup.objects.count() == 0


@pytest.mark.parametrize("plain", [True, False], ids=["plain", "not-plain"])
@pytest.mark.parametrize(
    "occurred_at",
    ["1900-01-01T00:00:00Z", "2025-02-28T23:59:59.999999Z", "2024-02-29T00:00:00+15:59", "2025-03-01T10:00:00-15:59"],
)
def test_timestamps_at_the_edges_of_the_strict_subset_take_the_fast_path(customers, occurred_at, plain):
    rows = [["e1", "C1", "phone", occurred_at, "call"]] + ([] if plain else [ROWS[2]])
    result = ingest_csv_pg(kind="interactions", header=HEADER, body=csv_body(rows))
    assert result is not None and result.created == len(rows)
    expected = rows_validate(
        "interactions",
        [{"external_id": "x", "customer_external_id": "C1", "channel": "phone", "occurred_at": occurred_at}],
    )
    assert Interaction.objects.get(external_id="e1").occurred_at == expected[0]["occurred_at"]


def test_an_offset_past_15_59_is_imported_by_the_validator_path(customers, tmp_path: Path):
    """The validator accepts offsets up to 23:59; PostgreSQL refuses past 15:59 (the fast path's cast raised a
    DataError out of the import)."""
    path = tmp_path / "interactions.csv"
    path.write_text(",".join(HEADER) + "\ni1,C1,phone,2025-03-01T10:00:00+16:00,call\n")
    result = file_import(kind="interactions", path=path)
    assert (result.rows, result.created) == (1, 1)
    assert Interaction.objects.get(external_id="i1").occurred_at == datetime(2025, 2, 28, 18, 0, tzinfo=UTC)


def test_a_line_that_ends_copy_data_is_reported_and_nothing_is_written(customers, tmp_path: Path):
    """A line `\\.` ends the data of a COPY: the lines after it were left out, and the file was imported in
    part. The validator reports the line."""
    path = tmp_path / "interactions.csv"
    path.write_text(
        ",".join(HEADER) + "\ni1,C1,phone,2025-03-01T10:00:00Z,call\n\\.\ni2,C1,phone,2025-03-01T10:00:00Z,call\n"
    )
    with pytest.raises(FileRejected) as rejected:
        file_import(kind="interactions", path=path)
    assert [e.position for e in rejected.value.errors] == [3]
    assert Interaction.objects.count() == 0


def test_a_plain_file_is_written_as_the_validator_path_writes_it(customers):
    rows = [
        ["i1", "C1", "phone", "2025-03-01T10:00:00Z", "call"],
        ["i2", "C2", "app", "2025-03-01T23:30:00.25-02:00", ""],
    ]
    body = csv_body([[f"db-{r[0]}", *r[1:]] for r in rows])
    assert body.isascii() and b" " not in body
    assert ingest_csv_pg(kind="interactions", header=HEADER, body=body).created == 2
    raw = [dict(zip(HEADER, [f"py-{r[0]}", *r[1:]], strict=True)) for r in rows]
    ingest_rows(
        kind="interactions", rows=rows_validate("interactions", [{k: v for k, v in r.items() if v} for r in raw])
    )
    fields = ["customer_id", "channel", "occurred_at", "kind"]
    assert stored(Interaction, "db-", fields) == stored(Interaction, "py-", fields)


def test_file_import_falls_back_to_the_validator_for_valid_unusual_spellings(customers, tmp_path: Path):
    path = tmp_path / "interactions.csv"
    path.write_text(
        ",".join(HEADER) + "\ni1,C1,phone,2025-03-01 10:00:00Z,Anruf \u260e\ni2,C2,app,2025-03-01T10:00:00Z,\n"
    )
    result = file_import(kind="interactions", path=path)
    assert (result.rows, result.created) == (2, 2)
    assert Interaction.objects.get(external_id="i1").kind == "Anruf \u260e"


def test_a_repeated_column_is_handed_to_the_validator_which_rejects_it(customers, tmp_path: Path):
    path = tmp_path / "interactions.csv"
    path.write_text(",".join(HEADER) + ", kind\ni1,C1,phone,2025-03-01T10:00:00Z,call,other\n")
    assert (
        ingest_csv_pg(kind="interactions", header=[*HEADER, "kind"], body=b"i1,C1,phone,2025-03-01T10:00:00Z,a,b\n")
        is None
    )
    with pytest.raises(FileRejected, match="Repeated column"):
        file_import(kind="interactions", path=path)
    assert Interaction.objects.count() == 0


@pytest.mark.parametrize(
    ("kind", "header", "row"),
    [
        ("interactions", HEADER, ["late", "C1", "phone", "2099-03-01T10:00:00Z", ""]),
        ("revenue", ["external_id", "customer_external_id", "period", "amount"], ["late", "C1", "2099-03-01", "1.00"]),
    ],
)
def test_future_dated_rows_are_handed_to_the_validator(customers, tmp_path: Path, kind, header, row):
    assert ingest_csv_pg(kind=kind, header=header, body=csv_body([row])) is None
    path = tmp_path / f"{kind}.csv"
    path.write_text(",".join(header) + "\n" + ",".join(row) + "\n")
    with pytest.raises(FileRejected) as rejected:
        file_import(kind=kind, path=path)
    assert [(e.position, e.field) for e in rejected.value.errors] == [(2, DAY[kind])]
    assert not Interaction.objects.filter(external_id="late").exists()
    assert not RevenueEntry.objects.filter(external_id="late").exists()


DAY = {"interactions": "occurred_at", "revenue": "period"}


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"], ids=["ascii", "bom"])
def test_an_ascii_file_is_not_decoded_and_a_bom_is_skipped(customers, tmp_path: Path, bom):
    path = tmp_path / "interactions.csv"
    path.write_bytes(bom + (",".join(HEADER) + "\ni1,C1,phone,2025-03-01T10:00:00Z,call\n").encode())
    assert file_import(kind="interactions", path=path).created == 1
    assert Interaction.objects.get(external_id="i1").kind == "call"


def test_a_file_that_is_not_utf8_is_reported_by_the_validator(customers, tmp_path: Path):
    path = tmp_path / "interactions.csv"
    path.write_bytes(
        (",".join(HEADER) + "\ni1,C1,phone,2025-03-01T10:00:00Z,call\n").encode() + b"i2,C1,phone,x,\xff\n"
    )
    with pytest.raises(FileRejected, match="not valid UTF-8") as rejected:
        file_import(kind="interactions", path=path)
    assert [e.position for e in rejected.value.errors] == [3]
    assert Interaction.objects.count() == 0
