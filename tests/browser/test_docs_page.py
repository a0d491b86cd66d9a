"""The API docs page (/api/v1/docs, Swagger UI from ninja's local static files) renders every operation of
openapi.json in a real browser, with no error box."""

from __future__ import annotations

import json

from tests.browser.conftest import assert_no_django_error_page, screenshot, wait_until

METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}

RENDERED_OPERATIONS = """
return Array.from(document.querySelectorAll('#swagger-ui .opblock')).map(block => [
    block.querySelector('.opblock-summary-method').textContent.trim().toLowerCase(),
    block.querySelector('.opblock-summary-path').getAttribute('data-path'),
]);
"""

SWAGGER_ERRORS = """
return Array.from(document.querySelectorAll('#swagger-ui .errors-wrapper, #swagger-ui .version-pragma'))
    .map(element => element.innerText.trim());
"""


def schema_operations(client) -> set[tuple[str, str]]:
    schema = json.loads(client.get("/api/v1/openapi.json").content)
    return {(method, path) for path, item in schema["paths"].items() for method in item if method in METHODS}


def test_docs_page_shows_every_operation_and_no_error(browser, live_server, client):
    expected = schema_operations(client)
    assert len(expected) > 80  # the whole API, not an empty document

    browser.get(f"{live_server.url}/api/v1/docs")
    # Swagger UI fetches openapi.json, then renders either the operations or an error box.
    wait_until(
        browser,
        lambda d: len(d.execute_script(RENDERED_OPERATIONS)) >= len(expected) or d.execute_script(SWAGGER_ERRORS),
        "Swagger UI rendered neither the operations nor an error",
    )
    path = screenshot(browser, "api-docs")

    assert browser.execute_script(SWAGGER_ERRORS) == []
    assert_no_django_error_page(browser)
    assert browser.title == "Premier API"
    assert browser.find_element("css selector", "#swagger-ui .info .title").text.startswith("Premier API")
    rendered = [tuple(item) for item in browser.execute_script(RENDERED_OPERATIONS)]
    assert len(rendered) == len(expected)
    assert sorted(rendered) == sorted(expected)
    # The assets came from this server, not a CDN.
    scripts = [s.get_attribute("src") for s in browser.find_elements("css selector", "script[src]")]
    assert scripts and all(src.startswith(f"{live_server.url}/static/ninja/") for src in scripts), scripts
    assert path.stat().st_size > 10_000
