"""A programme manager creates a programme and its tier in the console, enrols a segment run after reading the
power figures, watches the enrolment finish, overrides a member's tier, asks why a customer is in the run,
and opens the impact page."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from loyalty.programmes.models import Membership
from loyalty.segmentation.services.segments import segment_create, segment_run_create, segment_run_execute
from tests.browser.conftest import PHONE, full_page_screenshot, login_browser, wait_until
from tests.browser.test_console_agent import _loaded, click_and_load
from tests.factories import CustomerFactory, UserFactory
from tests.loyalty.scoring.factories import ScoringRunFactory, metrics_for


def _fill(driver, field_id: str, value: str) -> None:
    element = driver.find_element(By.ID, field_id)
    element.clear()
    element.send_keys(value)


def test_manager_sets_up_a_programme_enrols_a_run_and_overrides_a_tier(browser, live_server):
    scoring = ScoringRunFactory()
    for i in range(40):
        metrics_for(scoring, CustomerFactory(name=f"Customer {i:02d}"), engagement_score=40.0 + i, revenue_percentile=i)
    segment = segment_create(name="Engaged", rule={"all": [{"field": "engagement_score", "op": "gte", "value": 60}]})
    run = segment_run_execute(run_id=segment_run_create(segment=segment, enqueue=False).pk)
    manager = UserFactory(roles=["programme_manager"], first_name="Mona", last_name="Manager")
    login_browser(browser, live_server, manager)

    browser.get(f"{live_server.url}/console/manager/programmes/")
    _loaded(browser)
    click_and_load(browser, browser.find_element(By.ID, "new-programme"))
    _fill(browser, "id_name", "Gold Circle")
    _fill(browser, "id_holdout_percent", "60")
    click_and_load(browser, browser.find_element(By.ID, "save"))
    assert "Between 0 and 50." in browser.find_element(By.ID, "id_holdout_percent").find_element(By.XPATH, "..").text
    full_page_screenshot(browser, "console-manager-programme-error")
    _fill(browser, "id_holdout_percent", "20")
    click_and_load(browser, browser.find_element(By.ID, "save"))
    assert browser.find_element(By.TAG_NAME, "h1").text.startswith("Gold Circle")

    click_and_load(browser, browser.find_element(By.ID, "new-tier"))
    _fill(browser, "id_name", "Silver")
    _fill(browser, "id_threshold", "0")
    click_and_load(browser, browser.find_element(By.ID, "save"))
    click_and_load(browser, browser.find_element(By.ID, "new-tier"))
    _fill(browser, "id_name", "Gold")
    _fill(browser, "id_threshold", "-5")
    click_and_load(browser, browser.find_element(By.ID, "save"))
    beside = browser.find_element(By.ID, "id_threshold").find_element(By.XPATH, "..").text
    assert "Thresholds must increase with rank" in beside, beside
    full_page_screenshot(browser, "console-manager-tier-error")
    _fill(browser, "id_threshold", "30")
    click_and_load(browser, browser.find_element(By.ID, "save"))
    assert "Gold" in browser.find_element(By.CSS_SELECTOR, "table.tiers-table").text
    full_page_screenshot(browser, "console-manager-programme")

    click_and_load(browser, browser.find_element(By.ID, "enrol"))
    Select(browser.find_element(By.ID, "id_segment_run")).select_by_value(str(run.pk))
    click_and_load(browser, browser.find_element(By.ID, "preview"))
    assert browser.find_element(By.ID, "preview-counts").text.startswith("20 of the run's 20 customers")
    assert (
        browser.find_element(By.ID, "expected-treatment").text,
        browser.find_element(By.ID, "expected-control").text,
    ) == (
        "16",
        "4",
    )
    assert browser.find_element(By.ID, "mde-enrolment").text.endswith("percentage points")
    full_page_screenshot(browser, "console-manager-enrol-preview")

    click_and_load(browser, browser.find_element(By.ID, "confirm"))
    wait_until(
        browser,
        lambda d: d.find_element(By.ID, "enrolment-status").text == "Succeeded",
        "the enrolment did not finish",
        timeout=30,
    )
    assert browser.find_element(By.ID, "enrolled-count").text == "20"
    full_page_screenshot(browser, "console-manager-enrolment")

    click_and_load(browser, browser.find_element(By.LINK_TEXT, "Memberships of the programme"))
    Select(browser.find_element(By.ID, "id_group")).select_by_value("treatment")
    click_and_load(browser, browser.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]"))
    treatment = Membership.objects.filter(group="treatment").count()
    assert browser.find_element(By.ID, "membership-count").text.startswith(f"{treatment} membership")
    full_page_screenshot(browser, "console-manager-memberships")
    full_page_screenshot(browser, "console-manager-memberships-phone", window=PHONE)

    member = browser.find_element(By.CSS_SELECTOR, "table.memberships tbody tr a")
    name = member.text
    click_and_load(browser, member)
    Select(browser.find_element(By.ID, "id_tier_id")).select_by_visible_text("2: Gold")
    until = (timezone.now() + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M")
    browser.execute_script("arguments[0].value = arguments[1]", browser.find_element(By.ID, "id_expires_at"), until)
    _fill(browser, "id_reason", "Service recovery")
    click_and_load(browser, browser.find_element(By.ID, "set-override"))
    assert browser.find_element(By.ID, "effective-tier").text == "Gold"
    assert "Override" in browser.find_element(By.CSS_SELECTOR, "table.changes").text
    full_page_screenshot(browser, "console-manager-membership-override")

    browser.get(f"{live_server.url}/console/manager/runs/{run.pk}/")
    _loaded(browser)
    click_and_load(browser, browser.find_element(By.LINK_TEXT, name))
    assert browser.find_element(By.ID, "verdict").text.startswith("In the segment, rank")
    assert "passes" in browser.find_element(By.CSS_SELECTOR, "table.conditions").text
    full_page_screenshot(browser, "console-manager-explain")

    click_and_load(browser, browser.find_element(By.LINK_TEXT, "Impact"))
    assert "Impact dashboard of Gold Circle" in browser.find_element(By.CSS_SELECTOR, "table.impact").text
    full_page_screenshot(browser, "console-manager-impact")
