"""The impact dashboard (/manager/programmes/<id>/impact/) as a programme manager sees it in a browser."""

from __future__ import annotations

from tests.browser.conftest import assert_no_django_error_page, full_page_screenshot, login_browser, wait_until
from tests.factories import UserFactory
from tests.loyalty.retention.population import build

CHART_IMAGES = """
return Array.from(document.querySelectorAll('img')).map(img => ({
    src: img.getAttribute('src').slice(0, 26),
    complete: img.complete,
    width: img.naturalWidth,
    height: img.naturalHeight,
}));
"""

TABLE_HEADERS = """
return Array.from(document.querySelectorAll('table')).map(
    table => Array.from(table.querySelectorAll('th')).map(th => th.innerText.trim()));
"""


def test_impact_dashboard_in_a_browser(browser, live_server):
    pop = build(n_treatment=150, n_control=150, retention_treatment=0.9, retention_control=0.75)
    manager = UserFactory(roles=["programme_manager"])
    login_browser(browser, live_server, manager)

    browser.get(f"{live_server.url}/manager/programmes/{pop.programme.pk}/impact/")
    wait_until(browser, lambda d: d.execute_script("return document.readyState") == "complete", "page did not load")
    path = full_page_screenshot(browser, "impact-dashboard")

    assert_no_django_error_page(browser)
    assert browser.current_url == f"{live_server.url}/manager/programmes/{pop.programme.pk}/impact/"
    assert browser.title == f"Impact of {pop.programme.name}"
    assert browser.find_element("tag name", "h1").text == f"Does {pop.programme.name} keep customers?"
    headings = [h.text for h in browser.find_elements("tag name", "h2")]
    assert {"Survival", "Uplift by tier"} <= set(headings), headings
    # The uplift table: one row per horizon with treatment, control and the uplift.
    assert any({"Treatment", "Control", "Uplift"} <= set(headers) for headers in browser.execute_script(TABLE_HEADERS))
    # The charts are images that the browser decoded (an SVG that does not parse has no natural size).
    charts = [img for img in browser.execute_script(CHART_IMAGES) if img["src"].startswith("data:image/svg+xml")]
    assert len(charts) == 2, charts
    for chart in charts:
        assert chart["complete"] and chart["width"] > 300 and chart["height"] > 200, chart
    assert path.stat().st_size > 20_000
