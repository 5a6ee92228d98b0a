"""Settings shared by every environment. Everything deployment-specific comes from the environment."""

import ipaddress
from datetime import timedelta
from pathlib import Path

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
# A local .env file is optional; real deployments set the variables themselves.
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# Only ever used when DEBUG is on; production settings refuse it.
DEVELOPMENT_SECRET_KEY = "dev-insecure-only-for-local-use-0c6f1d"

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default=DEVELOPMENT_SECRET_KEY if DEBUG else "")
if not SECRET_KEY:
    raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"] if DEBUG else [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "guardian",
    "core.apps.AxesConfig",  # django-axes, with a translatable name
    "rest_framework",
    "drf_spectacular",
    "viewflow",
    "viewflow.workflow",
    "core",
    "members",
    "ledger",
    "wallet",
    "flows",
    "portal",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "viewflow.middleware.SiteMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into the lock-out page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.debug",
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Writers queue on the database lock instead of failing with "database is locked";
    # select_for_update() is a no-op on SQLite, so IMMEDIATE transactions do the serialising.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;",
        }
    )
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # No JIT compilation: every query here is a short OLTP read or write, and a few whose plan is costed
    # above jit_above_cost (a subquery per member entry, say) spent 20 ms compiling to save 1 ms. A
    # DATABASE_URL that sets its own `options` keeps them.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("options", "-c jit=off")
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
    CELERY_BROKER_URL = REDIS_URL
    CELERY_RESULT_BACKEND = REDIS_URL
    CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CELERY_BROKER_URL = "memory://"
    CELERY_RESULT_BACKEND = "cache+memory://"
    CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TIMEZONE = "Asia/Shanghai"
CELERY_TASK_ACKS_LATE = True
CELERY_BEAT_SCHEDULE = {
    # Shortly after midnight in Asia/Shanghai: benefits valid "until yesterday" expire.
    "wallet-expire-due-benefits": {
        "task": "wallet.expire_due_benefits",
        "schedule": crontab(hour=0, minute=5),
    },
    # Reminders and escalations of open approval tasks; refunds whose execution was lost are re-scheduled.
    "flows-run-deadlines": {
        "task": "flows.run_deadlines",
        "schedule": crontab(minute="*/15"),
    },
}

AUTHENTICATION_BACKENDS = [
    # First: refuses a locked-out login before any password is checked (django-axes).
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"
GUARDIAN_RAISE_403 = True

# Login throttling (django-axes) on every login that goes through django.contrib.auth: the portal's
# /accounts/login/ and the admin's /admin/login/. A username is locked after AXES_FAILURE_LIMIT failures
# from any address, and an address after as many failures across usernames; both for LOGIN_COOLOFF_MINUTES.
# Records (failed attempts, every failure with its lock-out flag, successful logins) live in the database
# and show in the admin to the platform admin; `manage.py axes_reset` lifts lock-outs early.
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_VERBOSE = False  # no start-up banner on every process (workers, scripts, benchmarks' JSON output)
# Reverse proxies in front of the application that append the client's address to X-Forwarded-For (nginx:
# `proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for`). 0: the client is REMOTE_ADDR. Without it,
# behind a proxy every user would share the proxy's address and one guesser would lock everyone out.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)


def _client_ip_address(request) -> str | None:
    """The login's client address for throttling: the entry the outermost trusted proxy appended to
    X-Forwarded-For (entries left of it are whatever the client sent, so never trusted)."""
    from django.conf import settings

    count = settings.TRUSTED_PROXY_COUNT
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    if count and len(forwarded) >= count:
        try:
            return str(ipaddress.ip_address(forwarded[-count]))
        except ValueError:
            pass  # not an address a proxy wrote: fall back to the connection's
    return request.META.get("REMOTE_ADDR") or None


AXES_CLIENT_IP_CALLABLE = _client_ip_address
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=10)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LOGIN_COOLOFF_MINUTES", default=30))
# A successful login does not clear the count: it would clear every failure from that address, so an attacker
# holding any valid login could reset the counter between guesses at someone else's password.
AXES_RESET_ON_SUCCESS = False
AXES_ENABLE_ACCESS_FAILURE_LOG = True
AXES_LOCKOUT_TEMPLATE = "login_locked_out.html"
AXES_COOLOFF_MESSAGE = _("Too many failed logins. Please try again later.")
AXES_PERMALOCK_MESSAGE = _("Too many failed logins. Ask an administrator to unlock the account.")
ANONYMOUS_USER_NAME = None  # no anonymous object permissions

LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", _("Simplified Chinese")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "Asia/Shanghai"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
MEDIA_URL = "media/"
MEDIA_ROOT = env.path("MEDIA_ROOT", default=BASE_DIR / "media")

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {"TITLE": "Member back office mini-program API", "VERSION": "1.0.0"}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}

# The covering index on ledger legs is PostgreSQL-only; SQLite simply builds it without INCLUDE.
SILENCED_SYSTEM_CHECKS = ["models.W040"]
