from __future__ import annotations

import contextlib
import time

import pytest
from django.conf import settings
from django.core.cache import cache
from django.test import Client

from tests.factories import TEST_PASSWORD, UserFactory

ON_POSTGRES = settings.IS_POSTGRES
ON_BROKER = not settings.CELERY_TASK_ALWAYS_EAGER


def pytest_collection_modifyitems(config, items):
    skip_pg = pytest.mark.skip(reason="needs PostgreSQL (set DATABASE_URL)")
    skip_broker = pytest.mark.skip(reason="needs a real Celery broker (set CELERY_BROKER_URL)")
    for item in items:
        if "postgres" in item.keywords and not ON_POSTGRES:
            item.add_marker(skip_pg)
        if "broker" in item.keywords and not ON_BROKER:
            item.add_marker(skip_broker)


@pytest.fixture(scope="session", autouse=True)
def _test_broker(tmp_path_factory):
    """The embedded broker of the tests is a temporary file, never the one in var/ that `make run` uses."""
    from config.celery import app

    if settings.EMBEDDED_BROKER:
        app.conf.broker_url = f"sqla+sqlite:///{tmp_path_factory.mktemp('broker') / 'celery-broker.sqlite3'}"
    yield


def _clear_cache() -> None:
    # The database cache in a test without database access: that test wrote nothing to clear.
    with contextlib.suppress(RuntimeError):
        cache.clear()


@pytest.fixture(autouse=True)
def _test_settings(request, settings):
    from config.celery import app

    # Tasks run in-process unless a test asks for the real broker and worker.
    eager = "broker" not in request.keywords
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = eager
    settings.CELERY_TASK_ALWAYS_EAGER = eager
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    if "shared_cache" not in request.keywords:
        # The default cache is a database table shared by all processes (or Redis); inside one test process a
        # local-memory cache behaves the same and keeps the throttles' queries out of the query-count tests.
        # Tests marked `shared_cache` (and subprocess tests) run on the configured cache.
        settings.CACHES = {**settings.CACHES, "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    _clear_cache()
    yield
    _clear_cache()
    app.conf.task_always_eager = previous


@pytest.fixture
def client() -> Client:
    return Client()


def login_token(user, password: str = TEST_PASSWORD) -> str:
    """Log in through the allauth app client and return the session token."""
    response = Client().post(
        "/_allauth/app/v1/auth/login",
        {"email": user.email, "password": password},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    return response.json()["meta"]["session_token"]


class ApiClient:
    """A test client that talks to /api/v1 as one principal (session token or API key)."""

    def __init__(self, headers: dict[str, str] | None = None):
        self.client = Client()
        self.headers = headers or {}

    def _call(self, method: str, path: str, data=None, headers: dict | None = None, **kwargs):
        url = path if path.startswith("/") else f"/api/v1/{path}"
        all_headers = {**self.headers, **(headers or {})}
        if data is not None and method in {"post", "put", "patch", "delete"}:
            kwargs["content_type"] = "application/json"
        return getattr(self.client, method)(url, data=data, headers=all_headers, **kwargs)

    def get(self, path, data=None, **kw):
        return self._call("get", path, data, **kw)

    def post(self, path, data=None, **kw):
        return self._call("post", path, data if data is not None else {}, **kw)

    def put(self, path, data=None, **kw):
        return self._call("put", path, data if data is not None else {}, **kw)

    def patch(self, path, data=None, **kw):
        return self._call("patch", path, data if data is not None else {}, **kw)

    def delete(self, path, data=None, **kw):
        return self._call("delete", path, data, **kw)


def api_as(user) -> ApiClient:
    return ApiClient({"X-Session-Token": login_token(user)})


@pytest.fixture
def anon_api() -> ApiClient:
    return ApiClient()


@pytest.fixture
def manager(db):
    return UserFactory(roles=["programme_manager"])


@pytest.fixture
def agent(db):
    return UserFactory(roles=["concierge_agent"])


@pytest.fixture
def partner_user(db):
    return UserFactory(roles=["partner_staff"])


@pytest.fixture
def manager_api(manager) -> ApiClient:
    return api_as(manager)


@pytest.fixture
def agent_api(agent) -> ApiClient:
    return api_as(agent)


@pytest.fixture
def ingest_key(db) -> str:
    from accounts.services import api_key_create

    _, plaintext = api_key_create(name="test feed", scopes=["ingest"])
    return plaintext


@pytest.fixture
def ingest_api(ingest_key) -> ApiClient:
    return ApiClient({"X-API-Key": ingest_key})


@contextlib.contextmanager
def broker_at(url: str):
    """Point the Celery app at another broker for the block (a closed port for "broker down", another Redis
    database...), dropping its pooled connections on the way in and out so nothing keeps the other URL."""
    import os

    from config.celery import app

    def switch(to: str | None) -> None:
        if to is None:
            os.environ.pop("CELERY_BROKER_URL", None)
        else:
            os.environ["CELERY_BROKER_URL"] = to  # Celery reads the variable before its configuration
        app.conf.broker_url = to
        app._pool = None  # the next connection is made for the new URL (the old pool is left to close)
        app.amqp._producer_pool = None

    previous_env, previous = os.environ.get("CELERY_BROKER_URL"), app.conf.broker_url
    switch(url)
    try:
        yield
    finally:
        switch(previous)
        if previous_env is None:
            os.environ.pop("CELERY_BROKER_URL", None)
        else:
            os.environ["CELERY_BROKER_URL"] = previous_env


def wait_until(predicate, timeout: float = 60) -> bool:
    """Polls `predicate` while a worker (a thread of this process) writes. On SQLite the test database is an
    in-memory database in shared-cache mode, where a table another connection is writing answers SQLITE_LOCKED
    at once (the busy timeout does not apply to shared-cache locks): such a poll counts as not yet."""
    from django.db import OperationalError

    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return True
        except OperationalError as exc:
            if "locked" not in str(exc):
                raise
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)
