"""The API's JSON renderer: the bytes of ninja's own (json.dumps with NinjaJSONEncoder), written faster.

ninja renders every answer with `json.dumps(data, cls=NinjaJSONEncoder)`: the C encoder calls the encoder's
`default` for every value JSON has no type for, and NinjaJSONEncoder.default tries pydantic models, URLs, IP
addresses and enums (isinstance checks against abstract classes) before DjangoJSONEncoder gets to datetimes. A
page of 20 events carries 80 datetimes: that chain cost more than the rest of the encoding (issue 16).

Here `default` takes the exact types the schemas dump (datetime, date, Decimal) first, formatted as
DjangoJSONEncoder formats them (datetimes in ECMA-262's format: milliseconds, `Z` for UTC), and hands anything else
to NinjaJSONEncoder.default unchanged. The separators, escaping and key order are json.dumps' defaults, as before:
the bytes of every answer are the same.

Formatting a datetime in Python (isoformat, then cutting it to milliseconds) is most of what is left: the texts of
UTC datetimes are kept in a small per-process table (`_UTC_TEXTS`, emptied when it holds `UTC_TEXTS_MAX`). The
times members read most, those of the published events every member lists, are the same on every request, so they
are formatted once; a time seen once (a booking's creation) costs one more dict look-up. Two UTC datetimes that are
equal have the same fields, hence the same text.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from ninja.renderers import JSONRenderer
from ninja.responses import NinjaJSONEncoder


def _iso_datetime(value: datetime) -> str:
    """DjangoJSONEncoder's datetime: isoformat cut to milliseconds, `+00:00` written `Z`."""
    text = value.isoformat()
    if value.microsecond:
        text = text[:23] + text[26:]
    if text[-6:] == "+00:00":
        text = text[:-6] + "Z"
    return text


UTC_TEXTS_MAX = 4096
_UTC_TEXTS: dict[datetime, str] = {}  # dict get/set are atomic under the GIL: threads may share it


class PremierJSONEncoder(NinjaJSONEncoder):
    """NinjaJSONEncoder with the common exact types first; subclasses and other types take the usual path."""

    def default(self, o: Any) -> Any:
        kind = type(o)
        if kind is datetime:
            if o.tzinfo is not UTC:
                return _iso_datetime(o)
            text = _UTC_TEXTS.get(o)
            if text is None:
                if len(_UTC_TEXTS) >= UTC_TEXTS_MAX:
                    _UTC_TEXTS.clear()
                text = _UTC_TEXTS[o] = _iso_datetime(o)
            return text
        if kind is Decimal:
            return str(o)
        if kind is date:
            return o.isoformat()
        return super().default(o)


class PremierJSONRenderer(JSONRenderer):
    encoder_class = PremierJSONEncoder

    def __init__(self) -> None:
        # json.dumps(data, cls=...) builds an encoder per call with json.dumps' defaults; one instance built with
        # the same defaults holds no state between calls (encode() makes its own C encoder each time).
        self._encode = PremierJSONEncoder(**self.json_dumps_params).encode

    def render(self, request, data: Any, *, response_status: int) -> Any:
        return self._encode(data)
