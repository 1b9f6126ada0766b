"""Django settings, read from the environment; the app starts with no configuration at all."""

import os
import secrets
import socket
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent
DATA_DIR = Path(os.environ.get("CLOSEOUT_DATA_DIR", "var")).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)
(DATA_DIR / "static").mkdir(exist_ok=True)


def _kept_secret(name: str, nbytes: int = 48) -> str:
    """Return a secret from the environment, or one generated once and kept under the data dir."""
    env_name = f"CLOSEOUT_{name.upper()}"
    if os.environ.get(env_name):
        return os.environ[env_name]
    path = DATA_DIR / name
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(nbytes))
    return path.read_text().strip()


def _pii_key() -> tuple[str, Path | None]:
    """Return the PII master key, and where to keep it when it is new and not kept yet.

    The command line and the WSGI application gunicorn loads (both set CLOSEOUT_PII_KEY_UNSAVED=1
    before loading these settings) keep a new key only once they have seen that the database holds
    no personal data under a lost one (`identity.services.pii_key_check`); any other entry point
    keeps it at once, like SECRET_KEY.
    """
    path = DATA_DIR / "pii_key"
    if os.environ.get("CLOSEOUT_PII_KEY") or path.exists() or os.environ.get("CLOSEOUT_PII_KEY_UNSAVED") != "1":
        return _kept_secret("pii_key"), None
    return secrets.token_urlsafe(48), path


SECRET_KEY = _kept_secret("secret_key")
# Root key for PII: HMAC lookups and wrapping of per-holder data keys.
PII_MASTER_KEY, PII_KEY_UNSAVED_PATH = _pii_key()
DEBUG = os.environ.get("CLOSEOUT_DEBUG", "") == "1"
ALLOWED_HOSTS = os.environ.get("CLOSEOUT_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver,[::1]").split(",")
PUBLIC_URL = os.environ.get("CLOSEOUT_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "closeout.audit",
    "closeout.catalog",
    "closeout.identity",
    "closeout.cards",
    "closeout.ledger",
    "closeout.closures",
    "closeout.api",
    "closeout.integrations",
    "closeout.common",
    "closeout.portal",
    "closeout.certificates",
    "closeout.suppression",
    "closeout.aftercare",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "closeout.appointments",
    "closeout.returns",
    "closeout.console",
    "closeout.ops",
    "ninja",  # the API docs' viewer from ninja's own static files, not a CDN
    "closeout.notifications",
    "closeout.integrations.sms",
    "closeout.integrations.mailbox",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "closeout.common.security.SecurityHeaders",
    "closeout.common.head.HeadWithoutBody",
    "closeout.api.middleware.ApiHead",
    "closeout.api.middleware.ApiBodyGuard",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "closeout.urls"
WSGI_APPLICATION = "closeout.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASE_URL = os.environ.get("DATABASE_URL") or f"sqlite:///{DATA_DIR / 'closeout.sqlite3'}"
# Keep a process's connection between requests (a new PostgreSQL connection costs a backend fork,
# a new SQLite one its PRAGMAs); the health check replaces one the server has dropped.
DATABASES = {"default": dj_database_url.parse(
    DATABASE_URL, conn_max_age=int(os.environ.get("CLOSEOUT_DB_CONN_MAX_AGE", "60")), conn_health_checks=True
)}
IS_SQLITE = DATABASES["default"]["ENGINE"].endswith("sqlite3")
if IS_SQLITE:
    # IMMEDIATE takes the write lock at BEGIN: a deferred read-then-write upgrade fails at once
    # under concurrency (busy_timeout cannot help it); WAL lets readers run beside the writer.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test_closeout.sqlite3")}
else:
    # Django's backend with a health check that needs no round trip (see its module).
    DATABASES["default"]["ENGINE"] = "closeout.common.postgresql"
    # Several suites may share one PostgreSQL server: keep their test databases apart.
    DATABASES["default"]["TEST"] = {
        "NAME": f"test_{DATABASES['default']['NAME']}{os.environ.get('CLOSEOUT_TEST_DB_SUFFIX', '')}"
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# DBOS system database: beside the application database, in the same engine.
if IS_SQLITE:
    DBOS_SYSTEM_DATABASE_URL = os.environ.get(
        "CLOSEOUT_DBOS_DATABASE_URL", f"sqlite:///{DATA_DIR / 'dbos_sys.sqlite3'}"
    )
else:
    _db = DATABASES["default"]
    DBOS_SYSTEM_DATABASE_URL = os.environ.get(
        "CLOSEOUT_DBOS_DATABASE_URL",
        "postgresql://{user}@{host}:{port}/{name}_dbos".format(
            user=_db.get("USER") or "postgres",
            host=_db.get("HOST") or "127.0.0.1",
            port=_db.get("PORT") or 5432,
            name=_db["NAME"],
        ),
    )
DBOS_APPLICATION_VERSION = os.environ.get("CLOSEOUT_APP_VERSION", "closeout-1")
# One id per worker, stable across restarts (a restarted worker resumes its own workflows). The
# default differs per machine; a second worker started without an id while a live one holds the
# default takes `<default>-2` (then -3, ...), while a worker under a named id (CLOSEOUT_EXECUTOR_ID
# or --executor-id) refuses to start when a live worker holds it.
DBOS_EXECUTOR_ID = os.environ.get("CLOSEOUT_EXECUTOR_ID") or f"worker-{socket.gethostname() or 'localhost'}"[:120]
DBOS_EXECUTOR_ID_NAMED = bool(os.environ.get("CLOSEOUT_EXECUTOR_ID"))
# Workflows run at once per queue (one queue per external system): `name=PER_WORKER[/OVERALL]`,
# comma-separated, over the defaults in `closures.dispatch.DEFAULT_QUEUE_LIMITS`; OVERALL holds
# across all workers, for a provider that allows only so many parallel calls.
# How long a simulator's scripted `latency` fault holds the call.
CLOSEOUT_SIM_LATENCY_SEC = float(os.environ.get("CLOSEOUT_SIM_LATENCY_SEC", "0.3"))
CLOSEOUT_QUEUE_LIMITS = os.environ.get("CLOSEOUT_QUEUE_LIMITS", "")
DBOS_POLLING_INTERVAL = float(os.environ.get("CLOSEOUT_QUEUE_POLL_SEC", "0.2"))
# Connections a worker keeps to the DBOS system database (DBOS's own default is 20). See
# `ops.capacity` for what one worker may open in all.
DBOS_SYS_DB_POOL_SIZE = int(os.environ.get("CLOSEOUT_DBOS_POOL_SIZE", "10"))
SWEEP_SCHEDULE = os.environ.get("CLOSEOUT_SWEEP_SCHEDULE", "*/5 * * * * *")
# Finished workflows, idempotency records and other operational records are deleted this many days
# after they stopped mattering (`ops.pruning`); idempotency records are kept at least a day.
RECORDS_KEEP_DAYS = int(os.environ.get("CLOSEOUT_RECORDS_KEEP_DAYS", "30"))
# Workers beat every HEARTBEAT_SEC; one silent for HEARTBEAT_STALE_SEC is taken for dead and the
# sweep hands its pending workflows to the others. A stopping worker drains for WORKER_DRAIN_SEC.
HEARTBEAT_SEC = float(os.environ.get("CLOSEOUT_HEARTBEAT_SEC", "5"))
HEARTBEAT_STALE_SEC = float(os.environ.get("CLOSEOUT_HEARTBEAT_STALE_SEC", "30"))
WORKER_DRAIN_SEC = int(os.environ.get("CLOSEOUT_WORKER_DRAIN_SEC", "10"))
# When set, /metrics wants `Authorization: Bearer <token>`.
METRICS_TOKEN = os.environ.get("CLOSEOUT_METRICS_TOKEN", "")
# Which API keys may ask for authorizations: "partner" (any key) or "operator" (operator-scope keys
# only: the operator's own gates, readers and tills). An authorization answers whether a card
# exists and covers an amount, so where partners hold keys, production sets "operator".
AUTHORIZATIONS_SCOPE = os.environ.get("CLOSEOUT_AUTHORIZATIONS_SCOPE", "partner").strip().lower()
if AUTHORIZATIONS_SCOPE not in ("partner", "operator"):  # a typo must not leave the door open
    raise ImproperlyConfigured(f"CLOSEOUT_AUTHORIZATIONS_SCOPE must be partner or operator, "
                               f"not {AUTHORIZATIONS_SCOPE!r}")

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]

# Staff console: password + TOTP, lockout after repeated failures, idle timeout.
LOGIN_URL = "/console/login/"
OTP_TOTP_ISSUER = "closeout"
CONSOLE_LOCKOUT_FAILURES = int(os.environ.get("CLOSEOUT_CONSOLE_LOCKOUT_FAILURES", "5"))
CONSOLE_LOCKOUT_MINUTES = int(os.environ.get("CLOSEOUT_CONSOLE_LOCKOUT_MINUTES", "15"))
CONSOLE_IDLE_MINUTES = int(os.environ.get("CLOSEOUT_CONSOLE_IDLE_MINUTES", "15"))

LANGUAGE_CODE = "en"
LANGUAGES = [("zh-hans", "简体中文"), ("zh-hant", "繁體中文"), ("en", "English")]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_I18N = True
TIME_ZONE = "Asia/Hong_Kong"
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]  # site-wide CSS and JS (templates/base.html)
WHITENOISE_USE_FINDERS = True

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = 30 * 60
SESSION_COOKIE_SECURE = os.environ.get("CLOSEOUT_SECURE_COOKIES", "") == "1"
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
if os.environ.get("CLOSEOUT_BEHIND_TLS_PROXY", "") == "1":
    # The proxy terminates TLS and says so; then request.is_secure() is true and HSTS is sent.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
CSRF_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
DATA_UPLOAD_MAX_MEMORY_SIZE = 256 * 1024
CSRF_FAILURE_VIEW = "closeout.portal.views.csrf_failure"

# Email goes over SMTP, by default to a local relay on port 1025 (aiosmtpd, Mailpit). There is no
# console fallback on purpose: a console backend would print one-time codes into the logs.
EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
EMAIL_HOST = os.environ.get("CLOSEOUT_SMTP_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("CLOSEOUT_SMTP_PORT", "1025"))
EMAIL_HOST_USER = os.environ.get("CLOSEOUT_SMTP_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("CLOSEOUT_SMTP_PASSWORD", "")
EMAIL_USE_TLS = os.environ.get("CLOSEOUT_SMTP_STARTTLS", "") == "1"
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = (os.environ.get("CLOSEOUT_MAIL_FROM") or os.environ.get("CLOSEOUT_FROM_EMAIL")  # older name
                      or "closeout <no-reply@closeout.invalid>")

# Which implementation each external-system port uses: "simulator" (built in) or a real adapter.
CLOSEOUT_DISPATCH = os.environ.get("CLOSEOUT_DISPATCH", "1") == "1"

INTEGRATIONS = {
    "payments": os.environ.get("CLOSEOUT_PAYMENTS", "simulator"),
    "card_system": os.environ.get("CLOSEOUT_CARD_SYSTEM", "simulator"),
}

# The country code of local phone numbers staff type without one (Hong Kong: 8 digits).
PHONE_COUNTRY_CODE = os.environ.get("CLOSEOUT_PHONE_COUNTRY_CODE", "852").lstrip("+")
# Staff who hear about charges that slipped past a closing or closed card.
STAFF_ALERT_EMAILS = [a for a in os.environ.get("CLOSEOUT_STAFF_ALERT_EMAILS", "").split(",") if a]

LOG_FORMAT = os.environ.get("CLOSEOUT_LOG_FORMAT", "json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"case": {"()": "closeout.ops.logs.CaseContextFilter"},
                "repeats": {"()": "closeout.ops.logs.RepeatsFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(case)s] %(message)s"},
        "json": {"()": "closeout.ops.logs.JsonFormatter"},
    },
    "handlers": {"console": {"class": "closeout.ops.logs.StderrHandler", "formatter": LOG_FORMAT,
                             "filters": ["case"]}},
    "root": {"handlers": ["console"], "level": os.environ.get("CLOSEOUT_LOG_LEVEL", "INFO")},
    # DBOS adds a plain-text handler of its own only to a "dbos" logger that has none: give it ours,
    # so its warnings (step retries with their tracebacks) are JSON lines with the case like the rest;
    # the same warning outside a case (a queue thread's, at each poll) once a minute with a count.
    "loggers": {"dbos": {"level": "WARNING", "handlers": ["console"], "propagate": False, "filters": ["repeats"]}},
}
