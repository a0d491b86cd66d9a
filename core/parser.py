"""JSON parser for the API that refuses NUL characters: PostgreSQL text cannot store them, so they must be a
clear 422 at the edge instead of a database error deep inside a service."""

from __future__ import annotations

import json
from typing import Any

from ninja.parser import Parser

from core.errors import ValidationFailed

NUL_MESSAGE = "NUL characters (\\u0000) are not allowed."


class NulCharacterError(ValidationFailed):
    default_code = "validation_error"
    default_detail = "The input is not valid."


def _nul_paths(value: Any, path: str = "") -> list[str]:
    if isinstance(value, str):
        return [path or "__all__"] if "\x00" in value else []
    if isinstance(value, dict):
        found = []
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            found += [child] if "\x00" in str(key) else _nul_paths(item, child)
        return found
    if isinstance(value, list):
        return [
            p for index, item in enumerate(value) for p in _nul_paths(item, f"{path}.{index}" if path else str(index))
        ]
    return []


def _refuse(paths: list[str]) -> None:
    if paths:
        raise NulCharacterError(fields={path: [NUL_MESSAGE] for path in paths[:100]})


class SafeJsonParser(Parser):
    def parse_body(self, request):
        body = request.body
        data = json.loads(body)
        # In UTF-8 JSON a NUL can only arrive as the escape \u0000 (UTF-16 or UTF-32 bodies contain NUL bytes):
        # without either, there is nothing to look for in the parsed value.
        if b"\\u0000" in body or b"\x00" in body:
            _refuse(_nul_paths(data))
        return data

    def parse_querydict(self, data, list_fields, request):
        _refuse([key for key, values in data.lists() if "\x00" in key or any("\x00" in v for v in values)])
        return super().parse_querydict(data, list_fields, request)
