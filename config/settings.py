"""Premier settings. Every value comes from an environment variable with a default that runs on one
machine with nothing installed (SQLite in ./var, a Celery broker in a local SQLite file). See README
"Configuration"."""

import os
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("PREMIER_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


DEV_SECRET_KEY = "premier-development-secret-key-do-not-use-in-production"
DEBUG = env_bool("DJANGO_DEBUG", False)
PRODUCTION = env_bool("PREMIER_PRODUCTION", False)
SECRET_KEY = env("DJANGO_SECRET_KEY", DEV_SECRET_KEY)
if PRODUCTION and (SECRET_KEY == DEV_SECRET_KEY or len(SECRET_KEY) < 32):
    raise ImproperlyConfigured(
        "PREMIER_PRODUCTION is set but DJANGO_SECRET_KEY is missing, the development key, or shorter than "
        "32 characters. Set a long random DJANGO_SECRET_KEY."
    )
if PRODUCTION and DEBUG:
    raise ImproperlyConfigured("DJANGO_DEBUG must be off when PREMIER_PRODUCTION is set.")

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "ninja",
    "allauth",
    "allauth.account",
    "allauth.headless",
    "django_celery_beat",
    "core",
    "accounts",
    "loyalty",
    "concierge",
    "events",
    "community",
    "console",
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "core.middleware.ContentSecurityPolicyMiddleware",
    # Serves static files (admin, the local Swagger UI) under runserver and gunicorn alike.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    # allauth's rate limits answer 429 in the usual error body, with a message and Retry-After.
    "core.middleware.AllauthThrottleMiddleware",
    # A lost database answers 503 + Retry-After, an over-size body 413: JSON in the usual error body.
    "core.middleware.FaultAnswersMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]


def database_from_url(url: str) -> dict:
    """Parse DATABASE_URL (postgres://user:pass@host:port/name?opt=val) into a Django DATABASES entry."""
    parsed = urlparse(url)
    if parsed.scheme not in {"postgres", "postgresql", "pgsql"}:
        raise ImproperlyConfigured(f"DATABASE_URL scheme {parsed.scheme!r} is not supported (use postgres://).")
    options = {key: values[-1] for key, values in parse_qs(parsed.query).items()}
    # A database host that does not answer costs at most this many seconds per connection attempt.
    options.setdefault("connect_timeout", env("DATABASE_CONNECT_TIMEOUT", "5"))
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parsed.path.lstrip("/")) or "premier",
        "USER": unquote(parsed.username or ""),
        "PASSWORD": unquote(parsed.password or ""),
        "HOST": parsed.hostname or "",
        "PORT": str(parsed.port or ""),
        "CONN_MAX_AGE": int(env("DATABASE_CONN_MAX_AGE", "60")),
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": options,
        "TEST": {"NAME": env("DATABASE_TEST_NAME") or None},
    }


DATABASE_URL = env("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {"default": database_from_url(DATABASE_URL)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": env("SQLITE_PATH", str(VAR_DIR / "premier.sqlite3")),
            # Writers take the lock at BEGIN and wait (busy timeout) instead of failing mid-transaction.
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }
IS_POSTGRES = DATABASES["default"]["ENGINE"].endswith("postgresql")
# The hot member queries are prepared once per database session on PostgreSQL (core.rows.Statement). Off
# (DATABASE_PREPARE=0) behind a pooler in transaction mode, where a session's prepared statements do not follow.
DATABASE_PREPARE = env_bool("DATABASE_PREPARE", True)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
# Without collectstatic (make run, tests) WhiteNoise finds files through the app finders.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# Sessions and security
SESSION_COOKIE_SECURE = PRODUCTION
CSRF_COOKIE_SECURE = PRODUCTION
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# Behind a proxy that terminates TLS and sets X-Forwarded-Proto: HTTPS redirect and HSTS. /api/v1/health stays
# reachable over plain HTTP for load-balancer probes inside the network.
BEHIND_TLS = env_bool("PREMIER_BEHIND_TLS", False)
if BEHIND_TLS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    SECURE_REDIRECT_EXEMPT = [r"^api/v1/health$"]
    SECURE_HSTS_SECONDS = int(env("SECURE_HSTS_SECONDS", str(365 * 24 * 3600)))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
# Content Security Policy of every HTML page (core.middleware.ContentSecurityPolicyMiddleware): only the
# service's own scripts, styles and images. 'unsafe-inline' for styles only (Swagger UI and the admin set style
# attributes, the dashboard has a <style> block); no inline script anywhere; charts are data: URIs.
CONTENT_SECURITY_POLICY = env(
    "CONTENT_SECURITY_POLICY",
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'",
)

# django-allauth (headless): email login, both the app (X-Session-Token) and browser (session) clients.
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_EMAIL_VERIFICATION = env("ACCOUNT_EMAIL_VERIFICATION", "mandatory")
ACCOUNT_EMAIL_VERIFICATION_BY_CODE_ENABLED = True
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_ADAPTER = (
    "loyalty.programmes.account_adapter.PremierAccountAdapter"  # links enrolled customers on email confirmation
)
ACCOUNT_RATE_LIMITS = {} if env_bool("PREMIER_DISABLE_RATE_LIMITS") else None
if ACCOUNT_RATE_LIMITS is None:
    del ACCOUNT_RATE_LIMITS
HEADLESS_ONLY = True
HEADLESS_CLIENTS = ("app", "browser")
# App-client session tokens are looked up with one query (allauth's default strategy takes two).
HEADLESS_TOKEN_STRATEGY = "core.auth.SessionTokenStrategy"
# Every flow that sends mail links to the frontend: email verification, password reset (also linked from the
# "account already exists" mail of sign-up, so without it sign-up with a known address answered 500), sign-up.
FRONTEND_URL = env("PREMIER_FRONTEND_URL", "http://127.0.0.1:8000")
HEADLESS_FRONTEND_URLS = {
    "account_confirm_email": FRONTEND_URL + "/account/verify/{key}",
    "account_reset_password": FRONTEND_URL + "/account/password/reset",
    "account_reset_password_from_key": FRONTEND_URL + "/account/password/reset/{key}",
    "account_signup": FRONTEND_URL + "/account/signup",
    "socialaccount_login_error": FRONTEND_URL + "/account/provider/callback",
}
# Staff pages outside the console (the impact dashboard) send anonymous visitors to the console login.
LOGIN_URL = "console:login"

# Email
EMAIL_BACKEND = env("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "Premier <no-reply@premier.example>")
EMAIL_HOST = env("EMAIL_HOST", "localhost")
# Who hears about breached concierge SLAs on requests nobody is assigned to.
CONCIERGE_LEAD_EMAIL = env("CONCIERGE_LEAD_EMAIL", "concierge-lead@premier.example")
EMAIL_PORT = int(env("EMAIL_PORT", "25"))

# Cache (throttles, allauth's login rate limits). Every process must see the same counts: Redis when REDIS_URL
# is set (failing open with a warning when Redis is unreachable, core.cache), else a table in the database
# (created by `migrate`, see core.apps). Heartbeats of beat and the workers live in their own table, never culled.
REDIS_URL = env("REDIS_URL")
CACHE_TABLE = "premier_cache"
HEARTBEAT_CACHE_TABLE = "premier_heartbeat"
CACHES = {
    "default": (
        {"BACKEND": "core.cache.FailOpenRedisCache", "LOCATION": REDIS_URL}
        if REDIS_URL
        else {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": CACHE_TABLE,
            "OPTIONS": {"MAX_ENTRIES": 100_000, "CULL_FREQUENCY": 4},
        }
    ),
    "heartbeats": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": HEARTBEAT_CACHE_TABLE,
        "TIMEOUT": None,
        "OPTIONS": {"MAX_ENTRIES": 10_000},
    },
}
# Beat runs core.tasks.beat_heartbeat every BEAT_HEARTBEAT_SECONDS; /health calls the scheduler down when the
# last heartbeat is older than 3 intervals.
BEAT_HEARTBEAT_SECONDS = int(env("BEAT_HEARTBEAT_SECONDS", "30"))
# /health: how long each dependency check may take (seconds).
HEALTH_CHECK_TIMEOUT = float(env("HEALTH_CHECK_TIMEOUT", "1"))

# Celery. Default: a real worker and beat (`make run`) on an embedded broker, kombu's SQLAlchemy transport on
# a SQLite file in VAR_DIR: nothing to install. CELERY_BROKER_URL (redis://...) for production. Eager
# (in-process) execution only when asked for: the tests force it per test.
CELERY_BROKER_URL = env("CELERY_BROKER_URL") or f"sqla+sqlite:///{VAR_DIR / 'celery-broker.sqlite3'}"
EMBEDDED_BROKER = CELERY_BROKER_URL.startswith("sqla+sqlite")
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND") or None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_TASK_TIME_LIMIT = int(env("CELERY_TASK_TIME_LIMIT", "3600"))
CELERY_TASK_SOFT_TIME_LIMIT = CELERY_TASK_TIME_LIMIT - 60
if EMBEDDED_BROKER:
    # The SQLAlchemy transport hands these to create_engine: wait for the file's lock instead of failing.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"connect_args": {"timeout": 30}}
    # No fanout on this transport: no remote control, mingle or gossip (nothing to talk to but itself).
    CELERY_WORKER_ENABLE_REMOTE_CONTROL = False
else:
    # Longer than the longest task and the longest countdown, or Redis redelivers a running task.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": int(env("CELERY_VISIBILITY_TIMEOUT", "7200"))}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Periodic work: one entry per task, `schedule` in seconds (loaded into django-celery-beat by
# `manage.py sync_beat`, which `make run` and the beat service run).
from community.schedule import BEAT as COMMUNITY_BEAT  # noqa: E402
from concierge.schedule import BEAT as CONCIERGE_BEAT  # noqa: E402
from events.schedule import BEAT as EVENTS_BEAT  # noqa: E402
from loyalty.schedule import BEAT as LOYALTY_BEAT  # noqa: E402

# Task outbox (core.outbox): the in-request publication attempt is bounded; the relay publishes the rest.
OUTBOX_PUBLISH_TIMEOUT = float(env("OUTBOX_PUBLISH_TIMEOUT", "1"))
OUTBOX_PUBLISH_BACKOFF_SECONDS = float(env("OUTBOX_PUBLISH_BACKOFF_SECONDS", "5"))
OUTBOX_RELAY_INTERVAL = int(env("OUTBOX_RELAY_INTERVAL", "15"))
OUTBOX_RELAY_MIN_AGE = float(env("OUTBOX_RELAY_MIN_AGE", "5"))
OUTBOX_RETENTION_HOURS = float(env("OUTBOX_RETENTION_HOURS", "72"))
# Runs (scoring, segment, enrolment, impact report): heartbeat and the reconciler (loyalty.runs).
RUN_PENDING_TIMEOUT = int(env("RUN_PENDING_TIMEOUT", "300"))
RUN_HEARTBEAT_TIMEOUT = int(env("RUN_HEARTBEAT_TIMEOUT", "600"))
RUN_MAX_ATTEMPTS = int(env("RUN_MAX_ATTEMPTS", "3"))
# Scoring runs (with their metrics and segment runs) older than this are deleted daily, except those an
# enrolment or a membership baseline still uses and each model's newest succeeded run
# (loyalty.retention.services.run_retention).
# 0 keeps every run.
SCORING_RUN_RETENTION_DAYS = int(env("SCORING_RUN_RETENTION_DAYS", "35"))
RUN_RECONCILE_INTERVAL = int(env("RUN_RECONCILE_INTERVAL", "60"))
RUN_HEARTBEAT_INTERVAL = float(env("RUN_HEARTBEAT_INTERVAL", "15"))
# Fault drills only (kill a worker mid-run): seconds a run pauses between its steps. Leave at 0.
RUN_STEP_DELAY_SECONDS = float(env("RUN_STEP_DELAY_SECONDS", "0"))

CELERY_BEAT_SCHEDULE: dict = {
    "purge-idempotency-records": {"task": "core.tasks.purge_idempotency_records", "schedule": 3600},
    "outbox-relay": {"task": "core.tasks.outbox_relay", "schedule": OUTBOX_RELAY_INTERVAL},
    "outbox-purge": {"task": "core.tasks.outbox_purge", "schedule": 3600},
    "beat-heartbeat": {"task": "core.tasks.beat_heartbeat", "schedule": BEAT_HEARTBEAT_SECONDS},
    **LOYALTY_BEAT,
    **CONCIERGE_BEAT,
    **EVENTS_BEAT,
    **COMMUNITY_BEAT,
}
if EMBEDDED_BROKER:
    CELERY_BEAT_SCHEDULE["embedded-broker-purge"] = {"task": "core.tasks.embedded_broker_purge", "schedule": 3600}

# Stripe
# Unset outside production: a local payment stand-in answers instead of Stripe (demos; events.stripe_standin).
STRIPE_SECRET_KEY = env("STRIPE_SECRET_KEY", "")
# The webhook signing secret: no default. Unset outside production, the webhook answers 503 (disabled); in
# production it must be set to the endpoint's real secret.
STRIPE_WEBHOOK_SECRET = env("STRIPE_WEBHOOK_SECRET", "")
if PRODUCTION and (not STRIPE_WEBHOOK_SECRET or "placeholder" in STRIPE_WEBHOOK_SECRET):
    raise ImproperlyConfigured(
        "PREMIER_PRODUCTION is set but STRIPE_WEBHOOK_SECRET is empty or a placeholder. Set it to the signing "
        "secret of the Stripe webhook endpoint (whsec_...)."
    )
# Every Stripe call has a time budget well under the web worker's timeout (gunicorn: 60 s): connect and read
# timeouts, and no SDK retries inside a request (tasks retry, STRIPE_TASK_MAX_NETWORK_RETRIES).
STRIPE_CONNECT_TIMEOUT_SECONDS = float(env("STRIPE_CONNECT_TIMEOUT_SECONDS", "3"))
STRIPE_REQUEST_TIMEOUT_SECONDS = float(env("STRIPE_REQUEST_TIMEOUT_SECONDS", "10"))
STRIPE_TASK_MAX_NETWORK_RETRIES = int(env("STRIPE_TASK_MAX_NETWORK_RETRIES", "2"))
# `Retry-After` (seconds) of a 503 when Stripe did not answer in time.
STRIPE_RETRY_AFTER_SECONDS = int(env("STRIPE_RETRY_AFTER_SECONDS", "30"))
# Another API base for Stripe (a proxy, or a local stand-in in tests); empty: Stripe's own.
STRIPE_API_BASE = env("STRIPE_API_BASE", "")
# Events: hours after an event ends during which partners may still check attendees in; then it is completed.
EVENT_COMPLETION_GRACE_HOURS = float(env("EVENT_COMPLETION_GRACE_HOURS", "2"))
# Events: hours before an event starts from which partners may check attendees in.
EVENT_CHECKIN_OPENS_HOURS = float(env("EVENT_CHECKIN_OPENS_HOURS", "2"))

# API
API_PAGE_MAX_LIMIT = 500
API_PAGE_MAX_OFFSET = 1_000_000
IDEMPOTENCY_KEY_TTL_HOURS = 24
# A concurrent duplicate waits this long for the first request with its key, then answers 409 with Retry-After.
IDEMPOTENCY_WAIT_SECONDS = float(env("IDEMPOTENCY_WAIT_SECONDS", "5"))
IDEMPOTENCY_RETRY_AFTER_SECONDS = 2
# A claim of a request that died expires after this (longer than any request may run: gunicorn kills at 60 s).
IDEMPOTENCY_CLAIM_SECONDS = int(env("IDEMPOTENCY_CLAIM_SECONDS", "120"))
# Ingestion and import_data refuse dates and times more than this many hours in the future (clock skew allowed).
INGEST_FUTURE_TOLERANCE_HOURS = float(env("INGEST_FUTURE_TOLERANCE_HOURS", "24"))
# Ingestion batches hold up to 10,000 rows (a few MB of JSON); Django's default body limit is 2.5 MB.
DATA_UPLOAD_MAX_MEMORY_SIZE = int(env("DATA_UPLOAD_MAX_MEMORY_SIZE", str(32 * 1024 * 1024)))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {"django.request": {"level": "ERROR"}},
}
API_THROTTLE_ANON = env("API_THROTTLE_ANON", "120/min")
API_THROTTLE_AUTH = env("API_THROTTLE_AUTH", "1200/min")
