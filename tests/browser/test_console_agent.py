"""An agent logs into the console, takes a request from the queue, replies and fulfils it."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from tests.browser.conftest import PHONE, assert_no_django_error_page, full_page_screenshot, wait_until
from tests.concierge.factories import make_member, make_request
from tests.factories import TEST_PASSWORD, TierFactory, UserFactory


def _loaded(driver):
    wait_until(driver, lambda d: d.execute_script("return document.readyState") == "complete", "page did not load")
    assert_no_django_error_page(driver)


def click_and_load(driver, element):
    """Click something that loads a new page and wait until the new page is there."""
    from selenium.common.exceptions import WebDriverException

    old = driver.find_element(By.TAG_NAME, "html")
    element.click()

    def gone(_driver) -> bool:
        try:
            old.is_enabled()
        except WebDriverException:  # stale; Chromium sometimes says "node does not belong to the document"
            return True
        return False

    wait_until(driver, gone, "the page did not change")
    _loaded(driver)


def _submit(driver, form_action_suffix: str):
    click_and_load(
        driver, driver.find_element(By.CSS_SELECTOR, f"form[action$='{form_action_suffix}'] button[type=submit]")
    )


def test_agent_takes_replies_and_fulfils_a_request(browser, live_server):
    tier = TierFactory(rank=3, name="Gold", first_response_sla_hours=1, resolution_sla_hours=8)
    member, _ = make_member(tier=tier, name="Gus Gold")
    req = make_request(member, now=timezone.now() - timedelta(minutes=10), subject="Table for two at Mirazur")
    make_request(member, now=timezone.now(), subject="Opera tickets")
    agent = UserFactory(roles=["concierge_agent"], first_name="Alice", last_name="Agent")

    browser.get(f"{live_server.url}/console/agent/queue/")
    _loaded(browser)
    assert browser.current_url.startswith(f"{live_server.url}/console/login/")
    browser.find_element(By.ID, "id_login").send_keys(agent.email)
    browser.find_element(By.ID, "id_password").send_keys("not the password")
    click_and_load(browser, browser.find_element(By.CSS_SELECTOR, "main form button[type=submit]"))
    refusal = browser.find_element(By.CSS_SELECTOR, "main form .errorlist").text
    assert refusal == "The email address and/or password you specified are not correct.", refusal
    full_page_screenshot(browser, "console-login-refused")
    browser.find_element(By.ID, "id_password").send_keys(TEST_PASSWORD)
    click_and_load(browser, browser.find_element(By.CSS_SELECTOR, "main form button[type=submit]"))
    assert browser.current_url == f"{live_server.url}/console/agent/queue/"
    rows = [row.text for row in browser.find_elements(By.CSS_SELECTOR, "table.queue tbody tr")]
    assert rows[0].startswith(f"{req.pk} Table for two at Mirazur"), rows

    click_and_load(browser, browser.find_element(By.LINK_TEXT, "Table for two at Mirazur"))
    click_and_load(browser, browser.find_element(By.ID, "assign-me"))
    assert browser.find_element(By.ID, "assignee").text == "Alice Agent"

    browser.find_element(By.ID, "id_reply-body").send_keys("Booked for 8pm, window table.")
    _submit(browser, "/reply/")
    assert "Your reply is sent to the member." in browser.find_element(By.CSS_SELECTOR, ".messages").text
    assert browser.find_element(By.ID, "status").text == "Acknowledged"

    for label in ("In progress", "Fulfilled"):
        Select(browser.find_element(By.ID, "id_transition-to_status")).select_by_visible_text(label)
        _submit(browser, "/transition/")
        assert browser.find_element(By.ID, "status").text == label

    path = full_page_screenshot(browser, "console-agent-request-fulfilled")
    conversation = browser.find_element(By.CSS_SELECTOR, ".conversation").text
    assert "Booked for 8pm, window table." in conversation
    audit = browser.find_element(By.CSS_SELECTOR, ".audit").text
    assert "Agent replied" in audit and "in_progress → fulfilled" in audit
    req.refresh_from_db()
    assert (req.status, req.assignee_id) == ("fulfilled", agent.pk)
    assert path.stat().st_size > 10_000

    # Phone-sized: the queue reads without a horizontal scrollbar, one card per request.
    make_request(member, now=timezone.now() - timedelta(hours=3), category="travel", subject="Airport transfer")
    from concierge.models import ConciergeRequest

    ConciergeRequest.objects.filter(subject="Airport transfer").update(first_response_breached=True)
    browser.set_window_size(*PHONE)
    browser.get(f"{live_server.url}/console/agent/queue/?status=")
    _loaded(browser)
    width = browser.execute_script("return document.documentElement.scrollWidth")
    assert width <= PHONE[0], width
    cards = browser.find_elements(By.CSS_SELECTOR, "table.queue tbody tr")
    assert [card.find_element(By.TAG_NAME, "a").text for card in cards] == ["Airport transfer", "Opera tickets"]
    assert cards[0].value_of_css_property("display") == "block"
    path = full_page_screenshot(browser, "console-agent-queue-phone", window=PHONE)
    assert path.stat().st_size > 10_000
