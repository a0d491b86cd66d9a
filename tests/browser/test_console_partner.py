"""Partner staff in the console: create an event, publish it, and check a member in by name."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from selenium.webdriver.common.by import By

from events.models import Booking, Event
from events.services.bookings import booking_create
from tests.browser.conftest import full_page_screenshot
from tests.browser.test_console_agent import _loaded, click_and_load
from tests.events.factories import PartnerFactory, member, partner_staff
from tests.factories import TEST_PASSWORD


def _fill(driver, field_id: str, value: str):
    element = driver.find_element(By.ID, field_id)
    if element.get_attribute("type") == "datetime-local":
        driver.execute_script("arguments[0].value = arguments[1]", element, value)
    else:
        element.clear()
        element.send_keys(value)


def test_partner_creates_publishes_and_checks_someone_in(browser, live_server):
    staff = partner_staff(PartnerFactory(name="Grand Hotel Riviera"))
    now = timezone.now().replace(second=0, microsecond=0)

    browser.get(f"{live_server.url}/console/")
    _loaded(browser)
    _fill(browser, "id_login", staff.email)
    _fill(browser, "id_password", TEST_PASSWORD)
    click_and_load(browser, browser.find_element(By.CSS_SELECTOR, "main form button[type=submit]"))
    click_and_load(browser, browser.find_element(By.LINK_TEXT, "Partner events"))
    click_and_load(browser, browser.find_element(By.ID, "new-event"))

    fmt = "%Y-%m-%dT%H:%M"
    # A first try with the end before the start: the message sits beside the field.
    for field, value in (
        ("id_title", "Sunset jazz on the terrace"),
        ("id_venue", "Terrace"),
        ("id_starts_at", (now + timedelta(hours=1)).strftime(fmt)),
        ("id_ends_at", now.strftime(fmt)),
        ("id_capacity", "30"),
        ("id_booking_opens_at", (now - timedelta(days=1)).strftime(fmt)),
    ):
        _fill(browser, field, value)
    click_and_load(browser, browser.find_element(By.CSS_SELECTOR, "main form button[type=submit]"))
    assert browser.find_element(By.ID, "id_ends_at_error").text == "Must be after starts_at."
    _fill(browser, "id_ends_at", (now + timedelta(hours=4)).strftime(fmt))
    click_and_load(browser, browser.find_element(By.CSS_SELECTOR, "main form button[type=submit]"))
    assert browser.find_element(By.ID, "event-status").text == "Draft"

    click_and_load(browser, browser.find_element(By.ID, "publish"))
    assert browser.find_element(By.ID, "event-status").text == "Published"
    event = Event.objects.get(title="Sunset jazz on the terrace")

    _, membership = member(guests=0)
    membership.customer.name = "Grace Hopper"
    membership.customer.save(update_fields=["name"])
    booking = booking_create(membership=membership, event_id=event.pk)
    browser.refresh()
    _loaded(browser)
    assert "is open" in browser.find_element(By.ID, "checkin-window").text

    _fill(browser, "id_q", "hopper")
    click_and_load(browser, browser.find_element(By.CSS_SELECTOR, "form[role=search] button[type=submit]"))
    click_and_load(browser, browser.find_element(By.CSS_SELECTOR, "button[aria-label='Check in Grace Hopper']"))
    assert f"Grace Hopper (B-{booking.pk}) is checked in." in browser.find_element(By.CSS_SELECTOR, ".messages").text
    rows = [row.text for row in browser.find_elements(By.CSS_SELECTOR, "table.bookings tbody tr")]
    assert len(rows) == 1 and "Attended" in rows[0], rows
    path = full_page_screenshot(browser, "console-partner-checked-in")
    booking.refresh_from_db()
    assert booking.status == Booking.Status.ATTENDED
    assert path.stat().st_size > 10_000

    click_and_load(browser, browser.find_element(By.ID, "cancel-event"))
    effects = browser.find_element(By.ID, "effects").text
    assert "cancel 0 confirmed bookings (0 seats);" in effects
    full_page_screenshot(browser, "console-partner-cancel-confirm")
