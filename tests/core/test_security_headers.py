"""Production headers: a Content Security Policy on HTML pages (Swagger UI still renders under it, checked in
headless Chromium), HTTPS redirect and HSTS when PREMIER_BEHIND_TLS says a TLS proxy is in front."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings as django_settings

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_html_pages_carry_the_content_security_policy(client):
    docs = client.get("/api/v1/docs")
    assert docs.status_code == 200
    assert docs["Content-Security-Policy"] == django_settings.CONTENT_SECURITY_POLICY
    assert "script-src 'self';" in docs["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in docs["Content-Security-Policy"]
    assert "Content-Security-Policy" not in client.get("/api/v1/health")


_PROBE = """
import json, django
django.setup()
from django.test import Client
c = Client()
out = {}
for name, path, headers in [
    ("http_docs", "/api/v1/docs", {}),
    ("https_docs", "/api/v1/docs", {"X-Forwarded-Proto": "https"}),
    ("http_health", "/api/v1/health", {}),
]:
    r = c.get(path, headers=headers)
    out[name] = {"status": r.status_code, "location": r.get("Location"), "hsts": r.get("Strict-Transport-Security")}
print(json.dumps(out))
"""


def _probe(tmp_path, **env) -> dict:
    environment = {
        **{k: v for k, v in os.environ.items() if k not in {"PREMIER_BEHIND_TLS", "DATABASE_URL", "REDIS_URL"}},
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "SQLITE_PATH": str(tmp_path / "probe.sqlite3"),
        "PREMIER_VAR_DIR": str(tmp_path),
        **env,
    }
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-c", _PROBE], cwd=REPO, env=environment, capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_behind_tls_redirects_to_https_and_sends_hsts(tmp_path):
    seen = _probe(tmp_path, PREMIER_BEHIND_TLS="1")
    assert seen["http_docs"] == {"status": 301, "location": "https://testserver/api/v1/docs", "hsts": None}
    assert seen["https_docs"] == {
        "status": 200,
        "location": None,
        "hsts": "max-age=31536000; includeSubDomains",
    }
    # Load-balancer probes over plain HTTP are not redirected.
    assert seen["http_health"]["status"] != 301
    # Without the setting: no redirect, no HSTS.
    assert _probe(tmp_path)["http_docs"] == {"status": 200, "location": None, "hsts": None}


CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.mark.skipif(not Path(CHROMEDRIVER).exists(), reason="needs Debian's chromium-driver")
@pytest.mark.django_db(transaction=True)
def test_swagger_ui_renders_under_the_policy_in_headless_chromium(live_server, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    with urllib.request.urlopen(f"{live_server.url}/api/v1/docs") as page:  # noqa: S310 - the local live server
        assert page.headers["Content-Security-Policy"] == django_settings.CONTENT_SECURITY_POLICY
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.get(f"{live_server.url}/api/v1/docs")
        # Swagger UI's own scripts ran under the policy: they render the operations (or, while openapi.json has
        # a duplicated key, issue 15, their own error box).
        WebDriverWait(driver, 30).until(
            expected_conditions.presence_of_element_located(
                (By.CSS_SELECTOR, "#swagger-ui .opblock-summary, #swagger-ui .errors-wrapper")
            )
        )
        operations = driver.find_elements(By.CSS_SELECTOR, "#swagger-ui .opblock-summary")
        parser_errors = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#swagger-ui .errors-wrapper")]
        screenshot = tmp_path / "docs-under-csp.png"
        driver.save_screenshot(str(screenshot))
        logs = driver.get_log("browser")
    finally:
        driver.quit()
    if parser_errors:
        assert all("duplicated mapping key" in text for text in parser_errors), parser_errors
    else:
        assert len(operations) > 50
    violations = [entry["message"] for entry in logs if "Content Security Policy" in entry["message"]]
    assert violations == []
    assert screenshot.stat().st_size > 10_000
