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


def test_an_opened_operation_shows_who_may_call_it_and_its_errors(browser, live_server):
    browser.get(f"{live_server.url}/api/v1/docs")
    path = "/api/v1/concierge/agent/requests/{request_id}/transition"
    block = wait_until(
        browser,
        lambda d: d.find_elements("css selector", f'#swagger-ui .opblock-post [data-path="{path}"]'),
        "the transition operation was not rendered",
    )[0]
    browser.execute_script("arguments[0].scrollIntoView({block: 'start'});", block)
    block.click()
    opened = wait_until(
        browser,
        lambda d: d.find_elements("css selector", "#swagger-ui .opblock.is-open .opblock-description-wrapper"),
        "the operation did not open",
    )[0]
    screenshot(browser, "api-docs-operation")

    description = opened.text
    assert description.startswith("Who may call: concierge agents (role concierge_agent).")
    assert "409 invalid_transition: the move is not allowed from the current status." in description
    assert "Credentials: the X-Session-Token header" in description
    statuses = [  # the header row first
        cell.text
        for cell in browser.find_elements(
            "css selector", "#swagger-ui .opblock.is-open .responses-table .response-col_status"
        )
    ]
    assert statuses[1:] == ["200", "400", "401", "403", "404", "409", "422", "429"]
