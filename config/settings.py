"""Premier settings. Every value comes from an environment variable with a default that runs on one
machine with nothing installed (SQLite in ./var, Celery eager). See README "Configuration"."""

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
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Serves static files (admin, the local Swagger UI) under runserver and gunicorn alike.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
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
HEADLESS_FRONTEND_URLS = {
    "account_confirm_email": env("PREMIER_FRONTEND_URL", "http://127.0.0.1:8000") + "/account/verify/{key}",
    "account_reset_password_from_key": env("PREMIER_FRONTEND_URL", "http://127.0.0.1:8000")
    + "/account/password/reset/{key}",
    "account_signup": env("PREMIER_FRONTEND_URL", "http://127.0.0.1:8000") + "/account/signup",
}
LOGIN_URL = "/admin/login/"

# Email
EMAIL_BACKEND = env("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "Premier <no-reply@premier.example>")
EMAIL_HOST = env("EMAIL_HOST", "localhost")
# Who hears about breached concierge SLAs on requests nobody is assigned to.
CONCIERGE_LEAD_EMAIL = env("CONCIERGE_LEAD_EMAIL", "concierge-lead@premier.example")
EMAIL_PORT = int(env("EMAIL_PORT", "25"))

# Cache (throttling, idempotency locks). Redis when REDIS_URL is set, else local memory.
REDIS_URL = env("REDIS_URL")
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

# Celery: eager by default (no broker needed); CELERY_BROKER_URL switches to a real broker.
CELERY_BROKER_URL = env("CELERY_BROKER_URL")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
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

CELERY_BEAT_SCHEDULE: dict = {
    "purge-idempotency-records": {"task": "core.tasks.purge_idempotency_records", "schedule": 3600},
    **LOYALTY_BEAT,
    **CONCIERGE_BEAT,
    **EVENTS_BEAT,
    **COMMUNITY_BEAT,
}

# Stripe
STRIPE_SECRET_KEY = env("STRIPE_SECRET_KEY", "sk_test_placeholder")
STRIPE_WEBHOOK_SECRET = env("STRIPE_WEBHOOK_SECRET", "whsec_placeholder")
# Events: hours after an event ends during which partners may still check attendees in; then it is completed.
EVENT_COMPLETION_GRACE_HOURS = float(env("EVENT_COMPLETION_GRACE_HOURS", "2"))

# API
API_PAGE_MAX_LIMIT = 500
API_PAGE_MAX_OFFSET = 1_000_000
IDEMPOTENCY_KEY_TTL_HOURS = 24
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
