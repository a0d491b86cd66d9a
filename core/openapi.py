"""Completes the generated OpenAPI document so that every operation explains its errors.

Operations write who may call them and the error codes of their own (`core.schemas.describe`). This adds,
from what each operation declares:
- the credentials it accepts (from its security schemes),
- one line per declared error status with the codes every operation shares, before the operation's own
  lines for that status,
- the same text as the description of each error response (what Swagger UI shows beside the status).
"""

from __future__ import annotations

import re
from typing import Any

from core.schemas import ERRORS_HEADING

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
ERROR_LINE = re.compile(r"^- \*\*(\d{3})\*\* (.*)$")

CREDENTIALS = {
    "SessionTokenAuth": "the `X-Session-Token` header (allauth app login)",
    "BrowserSessionAuth": "the browser session cookie (allauth browser login; `X-CSRFToken` on writes)",
    "ApiKeyAuth": "an integration key in `X-API-Key`",
}


ROLE_IN_WHO = re.compile(r"^\*\*Who may call:\*\*.*`(member|concierge_agent|programme_manager|partner_staff)`")


def _generic_errors(status: int, operation: dict[str, Any], method: str) -> list[str]:
    schemes = {name for requirement in operation.get("security", []) for name in requirement}
    params = {p.get("name") for p in operation.get("parameters", []) if p.get("in") == "header"}
    idempotent = "Idempotency-Key" in params
    writes = method not in {"get", "head", "options"}
    needs_role = bool(ROLE_IN_WHO.search(operation.get("description", "")))
    if status == 400:
        if _parsed_body(operation):
            return ["`malformed_request`: the body is not valid JSON (or not the declared content type)."]
        if "requestBody" in operation:
            return []  # a body the view reads raw (a webhook): the operation names its own codes
        return ["`malformed_request`: the request could not be read."]
    if status == 401:
        return ["`not_authenticated`: credentials are missing, invalid, expired or revoked."]
    if status == 403:
        lines = []
        if "ApiKeyAuth" in schemes:
            lines.append("`api_key_scope_missing`: the API key lacks the scope this operation needs.")
        if schemes & {"SessionTokenAuth", "BrowserSessionAuth"}:
            if needs_role:
                lines.append("`role_required`: the user lacks the role named above (`fields.roles` lists it).")
            if writes and "BrowserSessionAuth" in schemes:
                lines.append("`csrf_failed`: a browser-session write without a valid `X-CSRFToken` header.")
        return lines or ["`permission_denied`: the caller may not do this."]
    if status == 404:
        return ["`not_found`: no such object, or one the caller may not see (the same answer for both)."]
    if status == 409:
        if idempotent:
            return ["`idempotency_key_reused`: the `Idempotency-Key` was already used with a different request."]
        return []
    if status == 422:
        lines = ["`validation_error`: the input does not validate; `fields` maps each bad field to its messages."]
        if idempotent:
            lines.append("`invalid_idempotency_key`: the `Idempotency-Key` is longer than 255 or not printable.")
        return lines
    if status == 429:
        return ["`throttled`: too many requests; `Retry-After` says how many seconds to wait."]
    if status == 503:
        return ["`service_unavailable`: a service this operation depends on does not answer."]
    return []


def _parsed_body(operation: dict[str, Any]) -> bool:
    """The body is a declared schema that ninja parses and validates (not a raw body a view reads itself)."""
    content = operation.get("requestBody", {}).get("content", {})
    return any("$ref" in media.get("schema", {}) for media in content.values())


def _is_error_body(response: dict[str, Any]) -> bool:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return schema.get("$ref", "").endswith("/ErrorOut")


def _split(description: str) -> tuple[str, list[tuple[int, str]]]:
    body, _, section = description.partition(ERRORS_HEADING)
    own = []
    for line in section.splitlines():
        match = ERROR_LINE.match(line.strip())
        if match:
            own.append((int(match.group(1)), match.group(2)))
    return body.rstrip(), own


def document_operation(operation: dict[str, Any], method: str) -> None:
    body, own = _split(operation.get("description", ""))
    schemes = [name for requirement in operation.get("security", []) for name in requirement]
    if schemes:
        accepted = " or ".join(CREDENTIALS.get(name, f"`{name}`") for name in schemes)
        body += f"\n\n**Credentials:** {accepted}."
    elif operation.get("security") is None:
        body += "\n\n**Credentials:** none."

    responses = {int(key): value for key, value in operation.get("responses", {}).items()}
    lines = []
    # Own lines of a status the operation does not declare stay visible (the schema test refuses them).
    for status in sorted({s for s in responses if s >= 400} | {s for s, _ in own}):
        shared = status in responses and _is_error_body(responses[status])
        texts = (_generic_errors(status, operation, method) if shared else []) + [
            text for s, text in own if s == status
        ]
        lines += [f"- **{status}** {text}" for text in texts]
        if texts and status in responses:
            responses[status]["description"] = " ".join(texts)
    if lines:
        body += f"\n\n{ERRORS_HEADING}\n" + "\n".join(lines)
    operation["description"] = body.strip()


def document_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """Complete every operation of `schema` in place (and return it)."""
    for item in schema.get("paths", {}).values():
        for method in METHODS:
            if method in item:
                document_operation(item[method], method)
    return schema
