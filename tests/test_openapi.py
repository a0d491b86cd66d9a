"""openapi.json is a valid OpenAPI 3.1 document, as Swagger UI and other strict readers parse it.

Python's `json` keeps the last of two equal keys without a word; Swagger UI's YAML parser refuses the whole
document ("duplicated mapping key"). So the raw text is parsed with a hook that rejects duplicates before a
real validator (openapi-spec-validator) reads it.
"""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError


class DuplicateKeyError(ValueError):
    pass


def reject_duplicate_keys(pairs: list[tuple[str, object]]) -> dict:
    duplicates = sorted(key for key, count in Counter(key for key, _ in pairs).items() if count > 1)
    if duplicates:
        raise DuplicateKeyError(f"duplicate keys {duplicates} in an object with keys {[k for k, _ in pairs]}")
    return dict(pairs)


def strict_loads(text: str) -> dict:
    return json.loads(text, object_pairs_hook=reject_duplicate_keys)


@pytest.fixture
def openapi_text(client) -> str:
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    return response.content.decode()


def test_openapi_json_has_no_duplicate_keys(openapi_text):
    with pytest.raises(DuplicateKeyError, match=r"duplicate keys \['200'\]"):  # the check itself works
        strict_loads('{"responses": {"200": {}, "400": {}, "200": {}}}')
    strict_loads(openapi_text)


def test_openapi_json_is_valid_openapi_3_1(openapi_text):
    with pytest.raises(OpenAPIValidationError):  # the validator itself refuses a broken document
        validate({"openapi": "3.1.0", "info": {"title": "no version"}, "paths": {}})
    schema = strict_loads(openapi_text)
    assert schema["openapi"] == "3.1.0"
    validate(schema)


def test_file_downloads_document_their_media_type(openapi_text):
    paths = strict_loads(openapi_text)["paths"]
    media = {
        "/api/v1/segments/runs/{run_id}/members.csv": "text/csv",
        "/api/v1/retention/programmes/{programme_id}/impact/charts/{chart}.svg": "image/svg+xml",
        "/api/v1/retention/programmes/{programme_id}/impact/export.csv": "text/csv",
    }
    for path, media_type in media.items():
        assert list(paths[path]["get"]["responses"]["200"]["content"]) == [media_type], path


# --- every operation documents who may call it and what its errors mean -----------------------------------

METHODS = ("get", "put", "post", "delete", "patch")
WHO = re.compile(r"^\*\*Who may call:\*\* \S")
ERROR_LINE = re.compile(r"^- \*\*(\d{3})\*\* (.*)$", re.MULTILINE)
CODE = re.compile(r"`[a-z_]+`")


def operations(schema: dict):
    for path, item in schema["paths"].items():
        for method in METHODS:
            if method in item:
                yield f"{method.upper()} {path}", item[method]


def error_lines(description: str) -> dict[int, list[str]]:
    section = description.partition("**Errors:**")[2]
    lines: dict[int, list[str]] = {}
    for status, text in ERROR_LINE.findall(section):
        lines.setdefault(int(status), []).append(text)
    return lines


def parsed_body(op: dict) -> bool:
    """A body schema ninja validates (a raw body a view reads itself, like Stripe's webhook, is not)."""
    return any("$ref" in media["schema"] for media in op.get("requestBody", {}).get("content", {}).values())


def test_every_operation_has_a_summary_and_says_who_may_call_it(openapi_text):
    schema = strict_loads(openapi_text)
    missing = [
        name
        for name, op in operations(schema)
        if not op.get("summary", "").strip() or not WHO.match(op.get("description", ""))
    ]
    assert len(list(operations(schema))) > 80
    assert missing == []


def test_every_operation_declares_and_explains_its_error_responses(openapi_text):
    problems = []
    for name, op in operations(strict_loads(openapi_text)):
        declared = {int(status) for status in op["responses"] if int(status) >= 400}
        params = op.get("parameters", [])
        required = {429}
        if op.get("security"):
            required |= {401, 403}
        if params or parsed_body(op):
            required |= {422}
        if any(p["in"] == "path" for p in params):
            required |= {404}
        if required - declared:
            problems.append(f"{name}: does not declare {sorted(required - declared)}")
        explained = error_lines(op.get("description", ""))
        for status in sorted(declared):
            if not any(CODE.search(text) for text in explained.get(status, [])):
                problems.append(f"{name}: the description names no code for {status}")
            if not CODE.search(op["responses"][str(status)]["description"]):
                problems.append(f"{name}: response {status} names no code")
        for status in sorted(set(explained) - declared):
            problems.append(f"{name}: explains {status} but does not declare it")
    assert problems == []
