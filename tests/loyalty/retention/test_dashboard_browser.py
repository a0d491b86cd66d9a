"""The demo's impact dashboard in a real headless Chromium: a manager logs in through the admin login page,
the page shows curves, uplifts with two-ended intervals and the stated minimums, and a screenshot is kept."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from django.core.management import call_command

from accounts.management.commands.seed_users import DEMO_PASSWORD

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="needs Debian's chromium and chromium-driver"),
]


def _browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(argument)
    options.binary_location = CHROMIUM
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def test_demo_dashboard_in_a_browser(live_server, settings, tmp_path):
    from selenium.webdriver.common.by import By

    from loyalty.models import Programme

    settings.VAR_DIR = tmp_path
    call_command("seed_users")
    call_command("setup_demo", customers=2000)
    programme = Programme.objects.get(name="Premier Circle")
    driver = _browser()
    try:
        driver.get(f"{live_server.url}/admin/login/?next=/manager/programmes/{programme.pk}/impact/")
        driver.find_element(By.NAME, "username").send_keys("manager@premier.example")
        driver.find_element(By.NAME, "password").send_keys(DEMO_PASSWORD)
        driver.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
        assert driver.current_url == f"{live_server.url}/manager/programmes/{programme.pk}/impact/"
        text = driver.find_element(By.TAG_NAME, "body").text
        images = driver.execute_script(
            "return [...document.images].map(i => [i.alt, i.complete && i.naturalWidth > 0 ? i.naturalWidth : 0])"
        )
        height = driver.execute_script("return document.body.scrollHeight")
        driver.set_window_size(1400, min(height + 100, 8000))
        shot = Path(os.environ.get("PREMIER_SCREENSHOT_DIR", tmp_path)) / "impact-dashboard.png"
        driver.save_screenshot(str(shot))
    finally:
        driver.quit()
    assert shot.stat().st_size > 50_000
    assert "Does Premier Circle keep customers?" in text
    assert "Shown only with enough data: a horizon's uplift needs at least 10 members per group" in text
    # Both charts drawn (curves that part, uplift by tier), every overall horizon with a two-ended interval.
    assert [alt for alt, width in images if width > 0] == [
        "Kaplan-Meier survival curves per group",
        "Retention uplift by tier at 12 months with confidence intervals",
    ]
    rows = re.findall(r"^(3|6|12) months (\S+%) \(n=\d+\) (\S+%) \(n=\d+\) (\S+) (\S+) to (\S+) ", text, re.M)
    assert [r[0] for r in rows] == ["3", "6", "12"]
    assert all(float(low) < float(uplift) < float(high) for _, _, _, uplift, low, high in rows)
    assert "Log-rank test of equal survival curves" in text and "Restricted mean survival time" in text
    assert "n/a" not in text and "No survival curve yet" not in text
