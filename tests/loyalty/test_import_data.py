from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from loyalty.models import Customer, Interaction, RevenueEntry
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

INTERACTIONS_HEADER = "external_id,customer_external_id,channel,occurred_at,kind\n"


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def run(*args) -> str:
    from io import StringIO

    out = StringIO()
    call_command("import_data", *args, "--no-progress", stdout=out)
    return out.getvalue()


def jline(ext: str, customer: str = "C1", channel: str = "app", at: str = "2025-02-01T08:00:00Z") -> str:
    row = {"external_id": ext, "customer_external_id": customer, "channel": channel, "occurred_at": at}
    return json.dumps(row) + "\n"


def snapshot():
    return (
        list(Customer.objects.order_by("id").values()),
        list(Interaction.objects.order_by("id").values()),
        list(RevenueEntry.objects.order_by("id").values()),
    )


@pytest.fixture
def existing(db):
    customer = CustomerFactory(external_id="C1")
    Interaction.objects.create(
        customer=customer, channel="phone", occurred_at=datetime(2025, 1, 1, tzinfo=UTC), external_id="old"
    )
    return customer


def test_csv_customers_import_and_reimport(tmp_path):
    path = write(
        tmp_path,
        "customers.csv",
        "external_id,name,email,birth_year,region,joined_at,status,churned_at,attributes\n"
        'C1,Ann Example,ann@example.com,1985,north,2020-01-01T00:00:00Z,active,,"{""plan"": ""l""}"\n'
        "C2,Bob Example,,,,2021-06-01T12:00:00+02:00,churned,2025-01-31T00:00:00Z,\n",
    )
    assert "Imported 2 customers rows from customers.csv: 2 created, 0 updated, 0 unchanged" in run("customers", path)
    ann, bob = Customer.objects.order_by("external_id")
    assert (ann.email, ann.birth_year, ann.region, ann.attributes, ann.status) == (
        "ann@example.com",
        1985,
        "north",
        {"plan": "l"},
        "active",
    )
    assert (bob.email, bob.birth_year, bob.attributes, bob.status) == ("", None, {}, "churned")
    assert bob.joined_at == datetime(2021, 6, 1, 10, tzinfo=UTC)
    assert "0 created, 0 updated, 2 unchanged" in run("customers", path)


def test_jsonl_interactions_import(tmp_path, existing):
    path = write(
        tmp_path,
        "interactions.jsonl",
        jline("i1") + "\n" + jline("old", channel="store", at="2025-01-01T00:00:00Z"),
    )
    assert "2 created" not in (out := run("interactions", path))
    assert "1 created, 1 updated, 0 unchanged" in out
    assert dict(Interaction.objects.values_list("external_id", "channel")) == {"i1": "app", "old": "store"}


def test_revenue_csv_import(tmp_path, existing):
    path = write(
        tmp_path,
        "revenue.csv",
        "external_id,customer_external_id,period,amount,currency\nr1,C1,2025-01-01,49.90,EUR\nr2,C1,2025-02-01,0,\n",
    )
    assert "2 created" in run("revenue", path)
    assert list(RevenueEntry.objects.order_by("external_id").values_list("amount", "currency")) == [
        (Decimal("49.90"), "EUR"),
        (Decimal("0.00"), "EUR"),
    ]


def test_dry_run_counts_but_writes_nothing(tmp_path, existing):
    path = write(tmp_path, "i.csv", INTERACTIONS_HEADER + "i1,C1,phone,2025-02-01T08:00:00Z,call\n")
    before = snapshot()
    out = run("interactions", path, "--dry-run")
    assert "Checked (dry run, nothing written) 1 interactions rows from i.csv: 1 created" in out
    assert snapshot() == before


def rejected(*args) -> str:
    with pytest.raises(CommandError) as excinfo:
        run(*args)
    return str(excinfo.value)


def test_bad_encoding_is_refused_with_the_line(tmp_path, existing):
    rows = "i1,C1,phone,2025-02-01T08:00:00Z,call\ni2,C1,phone,2025-02-01T08:00:00Z,"
    content = (INTERACTIONS_HEADER + rows).encode()
    path = write(tmp_path, "i.csv", content + "appel re\xe7u\n".encode("latin-1"))
    before = snapshot()
    message = rejected("interactions", path)
    assert message.splitlines() == [
        "The file is not valid UTF-8; nothing was written.",
        f"  line 3: byte 0xe7 at offset {len(content) + 8} is not valid UTF-8.",
    ]
    assert snapshot() == before


def test_missing_column_is_named(tmp_path, existing):
    path = write(tmp_path, "i.csv", "external_id,customer_external_id,occurred_at\ni1,C1,2025-02-01T08:00:00Z\n")
    before = snapshot()
    message = rejected("interactions", path)
    assert message.startswith("Missing column(s): channel. A interactions file needs channel, customer_external_id")
    assert "  line 1: missing column 'channel'" in message
    assert snapshot() == before


def test_bad_date_is_named_with_its_line_and_nothing_is_written(tmp_path, existing):
    path = write(
        tmp_path,
        "i.csv",
        INTERACTIONS_HEADER
        + "i1,C1,phone,2025-02-01T08:00:00Z,\n"
        + "i2,C1,phone,2025-02-31T08:00:00Z,\n"
        + "i3,C1,phone,yesterday,\n",
    )
    before = snapshot()
    lines = rejected("interactions", path).splitlines()
    assert lines[0] == "The file was rejected: 2 problem(s); nothing was written."
    assert lines[1].startswith("  line 3: occurred_at: Input should be a valid datetime")
    assert lines[2].startswith("  line 4: occurred_at: Input should be a valid datetime")
    assert len(lines) == 3
    assert snapshot() == before


def test_duplicate_external_id_in_the_file_is_named(tmp_path, existing):
    path = write(
        tmp_path,
        "i.jsonl",
        jline("i1") + jline("i2") + jline("i1", channel="web") + jline("i1", customer="C9"),
    )
    before = snapshot()
    assert rejected("interactions", path).splitlines() == [
        "The file was rejected: 3 problem(s); nothing was written.",
        "  line 3: channel: Input should be 'phone', 'online', 'store', 'email', 'social', 'app', 'concierge' or "
        "'event'",
        "  line 4: external_id: Duplicate external_id 'i1': also at 1.",
        "  line 4: customer_external_id: Unknown customer 'C9'.",
    ]
    assert snapshot() == before


def test_duplicate_in_a_well_typed_file_is_named(tmp_path, existing):
    rows = "i1,C1,phone,2025-02-01T08:00:00Z,\ni1,C1,app,2025-02-02T08:00:00Z,\n"
    path = write(tmp_path, "i.csv", INTERACTIONS_HEADER + rows)
    assert rejected("interactions", path).splitlines() == [
        "The file was rejected: 1 problem(s); nothing was written.",
        "  line 3: external_id: Duplicate external_id 'i1': also at 2.",
    ]
    assert Interaction.objects.count() == 1


def test_unknown_customer_after_good_rows_writes_nothing(tmp_path, existing):
    good = "".join(f"i{n},C1,phone,2025-02-01T08:00:00Z,\n" for n in range(50))
    path = write(tmp_path, "i.csv", INTERACTIONS_HEADER + good + "i99,NOPE,phone,2025-02-01T08:00:00Z,\n")
    before = snapshot()
    assert rejected("interactions", path).splitlines() == [
        "The file was rejected: 1 problem(s); nothing was written.",
        "  line 52: customer_external_id: Unknown customer 'NOPE'.",
    ]
    assert snapshot() == before


def test_malformed_structure_is_reported(tmp_path, existing):
    path = write(tmp_path, "i.csv", INTERACTIONS_HEADER + "i1,C1,phone\n")
    assert "line 2: expected 5 values, found 3." in rejected("interactions", path)
    path = write(tmp_path, "i.jsonl", '{"external_id": "i1"\n[1, 2]\n')
    message = rejected("interactions", path)
    assert "line 1: Not valid JSON" in message and "line 2: Each line must be a JSON object." in message
    path = write(tmp_path, "c.csv", "")
    assert rejected("customers", path) == "The file is empty: it needs a header line."
    assert rejected("customers", tmp_path / "missing.csv").startswith("Cannot read")
    assert rejected("customers", write(tmp_path, "c.txt", "x")).startswith("Cannot tell the format of c.txt")
    assert Interaction.objects.count() == 1


def test_customer_file_without_optional_columns_keeps_the_stored_values(tmp_path):
    full = write(
        tmp_path,
        "full.jsonl",
        json.dumps(
            {
                "external_id": "K1",
                "name": "Ann",
                "email": "ann@example.test",
                "phone": "+33 1",
                "region": "north",
                "birth_year": 1985,
                "attributes": {"plan": "l"},
                "joined_at": "2020-01-01T00:00:00Z",
            }
        )
        + "\n",
    )
    run("customers", full)
    partial_csv = write(tmp_path, "partial.csv", "external_id,name,joined_at,email\nK1,Ann B,2020-01-01T00:00:00Z,\n")
    assert "0 created, 1 updated, 0 unchanged" in run("customers", partial_csv)
    ann = Customer.objects.get(external_id="K1")
    assert (ann.name, ann.email, ann.phone, ann.region, ann.birth_year, ann.attributes) == (
        "Ann B",
        "ann@example.test",
        "+33 1",
        "north",
        1985,
        {"plan": "l"},
    )
    clearing = write(
        tmp_path,
        "clear.jsonl",
        json.dumps({"external_id": "K1", "name": "Ann B", "joined_at": "2020-01-01T00:00:00Z", "phone": None}) + "\n",
    )
    assert "0 created, 1 updated, 0 unchanged" in run("customers", clearing)
    ann.refresh_from_db()
    assert (ann.email, ann.phone, ann.region) == ("ann@example.test", "", "north")


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_future_dated_interactions_are_refused_naming_the_line(tmp_path, existing, fmt):
    if fmt == "csv":
        content = INTERACTIONS_HEADER + "ok1,C1,app,2025-02-01T08:00:00Z,\nlate,C1,app,2099-02-01T08:00:00Z,\n"
    else:
        content = jline("ok1") + jline("late", at="2099-02-01T08:00:00Z")
    path = write(tmp_path, f"future.{fmt}", content)
    before = snapshot()
    with pytest.raises(CommandError) as raised:
        run("interactions", path)
    report = str(raised.value)
    line = 3 if fmt == "csv" else 2
    assert f"line {line}: occurred_at: 2099-02-01T08:00:00+00:00 is in the future" in report
    assert snapshot() == before


def test_future_dated_revenue_is_refused(tmp_path, existing):
    path = write(
        tmp_path,
        "revenue.csv",
        "external_id,customer_external_id,period,amount\nr1,C1,2025-01-01,10.00\nr2,C1,2099-01-01,10.00\n",
    )
    with pytest.raises(CommandError) as raised:
        run("revenue", path)
    assert "line 3: period: 2099-01-01 is in the future" in str(raised.value)
    assert not RevenueEntry.objects.exists()
