"""The API's renderer writes the bytes ninja's own renderer writes (json.dumps with NinjaJSONEncoder), faster."""

from __future__ import annotations

import enum
import json
import uuid
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal

import pytest
from ninja import Schema
from ninja.responses import NinjaJSONEncoder

from config.api import api
from core import renderers
from core.renderers import PremierJSONEncoder, PremierJSONRenderer


class Colour(enum.Enum):
    RED = "red"


class Inner(Schema):
    at: datetime


PLUS_TWO = timezone(timedelta(hours=2))
VALUES = [
    datetime(2027, 2, 5, 22, 48, 45, 186515, tzinfo=UTC),
    datetime(2027, 2, 5, 22, 48, 45, tzinfo=UTC),
    datetime(2027, 2, 5, 22, 48, 45, 1000, tzinfo=UTC),
    datetime(2027, 2, 5, 22, 48, 45, 500, tzinfo=UTC),
    datetime(2027, 2, 5, 22, 48, 45, 186515, tzinfo=PLUS_TWO),
    datetime(2027, 2, 5, 22, 48, 45, 186515),
    date(2027, 2, 5),
    time(10, 30, 0, 123456),
    timedelta(hours=1, seconds=3),
    Decimal("1017.35"),
    Decimal("1E+2"),
    Decimal("-0.00"),
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
    Colour.RED,
    Inner(at=datetime(2027, 1, 1, tzinfo=UTC)),
    'Zoë \u2014 "quoted" \n',
    1.5,
    10**20,
    None,
    True,
]


def ninja_bytes(data) -> str:
    return json.dumps(data, cls=NinjaJSONEncoder)


@pytest.mark.parametrize("value", VALUES, ids=[type(v).__name__ + str(i) for i, v in enumerate(VALUES)])
def test_each_value_renders_as_ninja_renders_it(value):
    data = {"items": [{"value": value, "list": [value, value]}], "count": 1}
    assert PremierJSONRenderer().render(None, data, response_status=200) == ninja_bytes(data)


def test_datetimes_keep_djangos_format():
    encode = PremierJSONEncoder().encode
    assert encode(VALUES[:6]) == (
        '["2027-02-05T22:48:45.186Z", "2027-02-05T22:48:45Z", "2027-02-05T22:48:45.001Z", "2027-02-05T22:48:45.000Z", '
        '"2027-02-05T22:48:45.186+02:00", "2027-02-05T22:48:45.186"]'
    )


def test_a_datetime_subclass_takes_ninjas_path():
    class Stamp(datetime):
        pass

    value = Stamp(2027, 2, 5, 22, 48, 45, 186515, tzinfo=UTC)
    assert PremierJSONEncoder().encode([value]) == ninja_bytes([value]) == '["2027-02-05T22:48:45.186Z"]'


def test_utc_texts_are_kept_and_the_table_is_bounded(monkeypatch):
    monkeypatch.setattr(renderers, "UTC_TEXTS_MAX", 3)
    monkeypatch.setattr(renderers, "_UTC_TEXTS", {})
    encode = PremierJSONEncoder().encode
    stamps = [datetime(2027, 1, 1, tzinfo=UTC) + timedelta(milliseconds=n) for n in range(5)]
    assert encode(stamps[:3]) == ninja_bytes(stamps[:3])
    assert list(renderers._UTC_TEXTS.values()) == [
        "2027-01-01T00:00:00Z",
        "2027-01-01T00:00:00.001Z",
        "2027-01-01T00:00:00.002Z",
    ]
    # Full: the next new time empties the table first.
    assert encode(stamps[3:]) == ninja_bytes(stamps[3:])
    assert list(renderers._UTC_TEXTS.values()) == ["2027-01-01T00:00:00.003Z", "2027-01-01T00:00:00.004Z"]
    # An equal datetime built another way reads the same text.
    assert encode([datetime(2027, 1, 1, 0, 0, 0, 4000, tzinfo=UTC)]) == '["2027-01-01T00:00:00.004Z"]'
    # Other offsets are formatted each time and not kept.
    assert encode([stamps[4].astimezone(PLUS_TWO)]) == '["2027-01-01T02:00:00.004+02:00"]'
    assert len(renderers._UTC_TEXTS) == 2


def test_the_api_renders_with_it():
    assert isinstance(api.renderer, PremierJSONRenderer)
