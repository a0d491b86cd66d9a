"""openapi.json is a valid OpenAPI 3.1 document, as Swagger UI and other strict readers parse it.

Python's `json` keeps the last of two equal keys without a word; Swagger UI's YAML parser refuses the whole
document ("duplicated mapping key"). So the raw text is parsed with a hook that rejects duplicates before a
real validator (openapi-spec-validator) reads it.
"""

from __future__ import annotations

import json
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


def test_strict_loads_rejects_duplicate_keys():
    with pytest.raises(DuplicateKeyError, match=r"duplicate keys \['200'\]"):
        strict_loads('{"responses": {"200": {}, "400": {}, "200": {}}}')
    assert strict_loads('{"a": {"b": 1}, "b": 2}') == {"a": {"b": 1}, "b": 2}


def test_validator_rejects_an_invalid_document():
    with pytest.raises(OpenAPIValidationError):
        validate({"openapi": "3.1.0", "info": {"title": "x"}, "paths": {}})


@pytest.fixture
def openapi_text(client) -> str:
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    return response.content.decode()


def test_openapi_json_has_no_duplicate_keys(openapi_text):
    strict_loads(openapi_text)


def test_openapi_json_is_valid_openapi_3_1(openapi_text):
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
