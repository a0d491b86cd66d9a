import os
import subprocess
import sys
from pathlib import Path

import pytest

from config.settings import database_from_url

ROOT = Path(__file__).resolve().parents[2]


def _import_settings(**env) -> subprocess.CompletedProcess:
    environment = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DJANGO_SECRET_KEY", "PREMIER_PRODUCTION", "STRIPE_WEBHOOK_SECRET"}
    }
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-c", "import config.settings"], cwd=ROOT, env=environment, capture_output=True, text=True
    )


def test_production_refuses_the_development_secret_key():
    result = _import_settings(PREMIER_PRODUCTION="1")
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_production_refuses_a_short_secret_key():
    result = _import_settings(PREMIER_PRODUCTION="1", DJANGO_SECRET_KEY="short")
    assert result.returncode != 0


def test_production_starts_with_a_real_secret_key():
    result = _import_settings(PREMIER_PRODUCTION="1", DJANGO_SECRET_KEY="x" * 50, STRIPE_WEBHOOK_SECRET="whsec_r3al")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("webhook_secret", [None, "", "whsec_placeholder"])
def test_production_refuses_a_missing_or_placeholder_stripe_webhook_secret(webhook_secret):
    env = {"PREMIER_PRODUCTION": "1", "DJANGO_SECRET_KEY": "x" * 50}
    if webhook_secret is not None:
        env["STRIPE_WEBHOOK_SECRET"] = webhook_secret
    result = _import_settings(**env)
    assert result.returncode != 0
    assert "ImproperlyConfigured: PREMIER_PRODUCTION is set but STRIPE_WEBHOOK_SECRET is empty" in result.stderr


def test_the_stripe_webhook_secret_has_no_default():
    result = subprocess.run(
        [sys.executable, "-c", "from config import settings; print(repr(settings.STRIPE_WEBHOOK_SECRET))"],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k != "STRIPE_WEBHOOK_SECRET"},
        capture_output=True,
        text=True,
    )
    assert result.stdout == "''\n", result.stderr


def test_database_url_is_parsed():
    db = database_from_url("postgres://app:s%40cret@db.internal:6432/premier?sslmode=require")
    assert db["ENGINE"] == "django.db.backends.postgresql"
    assert (db["NAME"], db["USER"], db["PASSWORD"], db["HOST"], db["PORT"]) == (
        "premier",
        "app",
        "s@cret",
        "db.internal",
        "6432",
    )
    assert db["OPTIONS"] == {"sslmode": "require", "connect_timeout": "5"}


def test_unsupported_database_url_is_refused():
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured):
        database_from_url("mysql://root@localhost/premier")


def test_the_wsgi_module_loads_the_api_and_freezes_start_up_objects():
    # gunicorn imports config.wsgi in each worker: the routers are imported there (not in the first request),
    # and what is alive then is moved out of the collector's generations (full collections took 60-170 ms).
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import gc, sys, config.wsgi; "
            "print(gc.get_freeze_count(), 'loyalty.segmentation.api.scoring' in sys.modules)",
        ],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"},
        capture_output=True,
        text=True,
        check=True,
    )
    frozen, api_loaded = result.stdout.split()
    assert int(frozen) > 100_000
    assert api_loaded == "True"


def test_gunicorn_started_in_the_project_root_takes_gunicorn_conf():
    # The Dockerfile, docker-compose.yml and bench/api_load.py start a bare `gunicorn` there. A worker must not
    # hoard keep-alive connections: at most 2 x threads each (all 16 of a load test landed on one worker before).
    gunicorn = Path(sys.executable).with_name("gunicorn")
    result = subprocess.run(  # noqa: S603 - the virtualenv's own gunicorn
        [str(gunicorn), "--print-config"], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
    )
    config = dict(line.split(" = ", 1) for line in result.stdout.splitlines() if " = " in line)
    config = {name.strip(): value.strip() for name, value in config.items()}
    assert config["wsgi_app"] == "config.wsgi:application"
    assert config["worker_class"] == "gthread"
    assert (config["workers"], config["threads"], config["worker_connections"]) == ("4", "4", "8")
    assert config["timeout"] == "60"
