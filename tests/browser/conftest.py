"""Browser tests: Debian's headless Chromium driven by selenium against pytest-django's `live_server`.

Fixtures and helpers for every browser test:
- `browser`: a selenium Chrome driver (headless Chromium, 1400x1000), quit after the test;
- `screenshot(driver, name)`: saves `var/screenshots/<name>.png` (ignored by git) and returns its path;
- `login_browser(driver, live_server, user)`: logs `user` into the browser with a Django session cookie.

Chromium and chromedriver come from Debian (`apt-get install chromium chromium-driver`; `make test` installs
them). Without them the browser tests are skipped with the reason, except in CI (`CI=true`), where a missing
browser fails the run: a green CI must mean the pages were seen.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

SCREENSHOT_DIR = Path(__file__).resolve().parents[2] / "var" / "screenshots"
WINDOW = (1400, 1000)
WAIT_SECONDS = 20


def _find(name: str, *fallbacks: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    return next((path for path in fallbacks if os.access(path, os.X_OK)), None)


def _executable(env_name: str, name: str, *fallbacks: str) -> str | None:
    """`$env_name` if set (and executable), else `name` on PATH, else a fallback path."""
    chosen = os.environ.get(env_name)
    if chosen:
        return chosen if os.access(chosen, os.X_OK) else None
    return _find(name, *fallbacks)


def chromium_paths() -> tuple[str | None, str | None]:
    binary = _executable("CHROMIUM_BIN", "chromium", "/usr/bin/chromium", "/usr/bin/chromium-browser")
    driver = _executable("CHROMEDRIVER_BIN", "chromedriver", "/usr/bin/chromedriver")
    return binary, driver


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def chromium() -> tuple[str, str]:
    binary, driver = chromium_paths()
    missing = [name for name, path in (("chromium", binary), ("chromedriver", driver)) if not path]
    if missing:
        reason = (
            f"{' and '.join(missing)} not found: install Debian's chromium and chromium-driver "
            "(`make test` does it as root: apt-get install -y chromium chromium-driver)"
        )
        if in_ci():
            pytest.fail(f"CI=true and {reason}", pytrace=False)
        pytest.skip(reason)
    return binary, driver


@pytest.fixture
def browser(chromium):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = chromium
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in containers and CI has no user namespace sandbox
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--hide-scrollbars",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        "--lang=en-US",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(WAIT_SECONDS)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver, name: str) -> Path:
    """Save the viewport as var/screenshots/<name>.png and return the path."""
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOT_DIR / f"{name}.png"
    assert driver.save_screenshot(str(path)), f"could not write {path}"
    return path


PHONE = (390, 844)


def full_page_screenshot(driver, name: str, window: tuple[int, int] = WINDOW) -> Path:
    """Resize the window to `window`'s width and the page's height (up to 6000 px), save the screenshot, then
    give the window its usual size back. `window=PHONE` pictures the page on a phone-sized screen."""
    driver.set_window_size(*window)
    if window != WINDOW:  # the new width lays the page out again before its height means anything
        wait_until(driver, lambda d: d.execute_script("return window.innerWidth") <= window[0], "no resize")
    height, chrome = driver.execute_script(
        "return [Math.min(document.documentElement.scrollHeight, 6000), window.outerHeight - window.innerHeight]"
    )
    driver.set_window_size(window[0], max(window[1], height + chrome))  # the window's own bars are not the page
    try:
        return screenshot(driver, name)
    finally:
        driver.set_window_size(*WINDOW)


def wait_until(driver, condition, message: str, timeout: float = WAIT_SECONDS):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition, message)


def login_browser(driver, live_server, user) -> None:
    """Log `user` in: a session made by Django's test client, its cookie set in the browser."""
    client = Client()
    client.force_login(user)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME]
    driver.get(f"{live_server.url}/__browser_login__/")  # any page of the host: cookies need one
    driver.add_cookie({"name": settings.SESSION_COOKIE_NAME, "value": cookie.value, "path": "/"})


def assert_no_django_error_page(driver) -> None:
    text = driver.find_element("tag name", "body").text
    for marker in ("Traceback", "Server Error (500)", "Page not found (404)", "Forbidden (403)", "Bad Request (400)"):
        assert marker not in text, f"{marker!r} on {driver.current_url}"
