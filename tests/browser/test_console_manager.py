"""A programme manager previews and saves a segment in the console, runs it and watches the run finish."""

from __future__ import annotations

from selenium.webdriver.common.by import By

from tests.browser.conftest import full_page_screenshot, login_browser, wait_until
from tests.browser.test_console_agent import _loaded, click_and_load
from tests.factories import CustomerFactory, TierFactory, UserFactory
from tests.loyalty.scoring.factories import ScoringRunFactory, metrics_for


def test_manager_previews_saves_and_runs_a_segment(browser, live_server):
    run = ScoringRunFactory()
    for name, score in (("Ada High", 90.0), ("Bob Mid", 65.0), ("Cy Low", 10.0)):
        metrics_for(run, CustomerFactory(name=name), engagement_score=score)
    tier = TierFactory(rank=1, name="Silver")
    manager = UserFactory(roles=["programme_manager"], first_name="Mona", last_name="Manager")
    login_browser(browser, live_server, manager)

    browser.get(f"{live_server.url}/console/")
    _loaded(browser)
    click_and_load(browser, browser.find_element(By.LINK_TEXT, "Segments"))
    click_and_load(browser, browser.find_element(By.ID, "new-segment"))
    browser.find_element(By.ID, "id_name").send_keys("Engaged customers")
    click_and_load(browser, browser.find_element(By.ID, "preview"))
    assert browser.find_element(By.ID, "preview-count").text == "2"
    sample = browser.find_element(By.ID, "preview-result").text
    assert "Ada High" in sample and "Bob Mid" in sample and "Cy Low" not in sample
    full_page_screenshot(browser, "console-manager-segment-preview")

    click_and_load(browser, browser.find_element(By.ID, "save"))
    assert browser.find_element(By.TAG_NAME, "h1").text == "Engaged customers"
    click_and_load(browser, browser.find_element(By.ID, "run-now"))
    wait_until(
        browser,
        lambda d: "Succeeded" in d.find_element(By.CSS_SELECTOR, "table.runs tbody").text,
        "the run did not finish",
        timeout=30,
    )
    row = browser.find_element(By.CSS_SELECTOR, "table.runs tbody tr").text
    assert "100%" in row, row
    path = full_page_screenshot(browser, "console-manager-segment-run")
    assert path.stat().st_size > 10_000

    click_and_load(browser, browser.find_element(By.CSS_SELECTOR, "table.runs tbody tr a"))
    members = [row.text for row in browser.find_elements(By.CSS_SELECTOR, "table.members tbody tr")]
    assert [m.split(" C")[0] for m in members] == ["1 Ada High", "2 Bob Mid"], members
    full_page_screenshot(browser, "console-manager-run-members")

    click_and_load(browser, browser.find_element(By.LINK_TEXT, "Programmes"))
    assert "Silver" in browser.find_element(By.CSS_SELECTOR, "main table").text
    assert (
        browser.find_element(By.LINK_TEXT, "Impact dashboard")
        .get_attribute("href")
        .endswith(f"/manager/programmes/{tier.programme_id}/impact/")
    )
    full_page_screenshot(browser, "console-manager-programmes")
