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
    # The uplift table: one row per horizon with treatment, control, the uplift and its interval.
    assert [
        "Horizon",
        "Treatment retained",
        "Control retained",
        "Uplift (points)",
        "95% CI",
        "p",
        "Question",
    ] in browser.execute_script(TABLE_HEADERS)
    # The charts are images that the browser decoded (an SVG that does not parse has no natural size).
    charts = [img for img in browser.execute_script(CHART_IMAGES) if img["src"].startswith("data:image/svg+xml")]
    assert len(charts) == 2, charts
    for chart in charts:
        assert chart["complete"] and chart["width"] > 300 and chart["height"] > 200, chart
    assert path.stat().st_size > 20_000


def test_demo_dashboard_after_logging_in_through_the_admin_login_page(browser, live_server, settings, tmp_path):
    """The demo's dashboard: curves that part, uplifts with two-ended intervals and the stated minimums."""
    import re

    from django.core.management import call_command

    from accounts.management.commands.seed_users import DEMO_PASSWORD
    from loyalty.models import Programme

    settings.VAR_DIR = tmp_path
    call_command("seed_users")
    call_command("setup_demo", customers=2000)
    programme = Programme.objects.get(name="Premier Circle")
    dashboard = f"{live_server.url}/manager/programmes/{programme.pk}/impact/"
    browser.get(f"{live_server.url}/admin/login/?next=/manager/programmes/{programme.pk}/impact/")
    browser.find_element("name", "username").send_keys("manager@premier.example")
    browser.find_element("name", "password").send_keys(DEMO_PASSWORD)
    browser.find_element("css selector", "input[type=submit]").click()
    wait_until(browser, lambda d: d.current_url == dashboard, "the login did not lead to the dashboard")
    text = browser.find_element("tag name", "body").text
    images = browser.execute_script(
        "return [...document.images].map(i => [i.alt, i.complete && i.naturalWidth > 0 ? i.naturalWidth : 0])"
    )
    path = full_page_screenshot(browser, "impact-dashboard-demo")

    assert_no_django_error_page(browser)
    assert path.stat().st_size > 50_000
    assert "Does Premier Circle keep customers?" in text
    assert "Shown only with enough data: a horizon's uplift needs at least 10 members per group" in text
    assert [alt for alt, width in images if width > 0] == [
        "Kaplan-Meier survival curves per group",
        "Retention uplift by tier at 12 months with confidence intervals",
    ]
    # Every overall horizon with a two-ended interval around its uplift.
    rows = re.findall(r"^(3|6|12) months (\S+%) \(n=\d+\) (\S+%) \(n=\d+\) (\S+) (\S+) to (\S+) ", text, re.M)
    assert [r[0] for r in rows] == ["3", "6", "12"]
    assert all(float(low) < float(uplift) < float(high) for _, _, _, uplift, low, high in rows)
    assert "Log-rank test of equal survival curves" in text and "Restricted mean survival time" in text
    assert "n/a" not in text and "No survival curve yet" not in text
