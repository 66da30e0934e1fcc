"""Settings for Heyloyalty: one module, every value from the environment.

Defaults run on a laptop against the embedded services that ``make run`` starts.
Production secrets have no default: with DEBUG off the process refuses to start
without a strong SECRET_KEY. The variables are listed in README.md.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from csp.constants import NONCE
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from heyloyalty import env

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env.load_env_file(Path(env.get("ENV_FILE", str(BASE_DIR / ".env"))))

DEBUG = env.get_bool("DEBUG", False)

SECRET_KEY = env.get("SECRET_KEY")
SECRET_KEY_FALLBACKS = env.get_list("SECRET_KEY_FALLBACKS")
if not DEBUG and (problem := env.secret_key_problem(SECRET_KEY)):
    raise ImproperlyConfigured(
        f"{problem}. With DEBUG off Heyloyalty will not start without a strong key. "
        "Set SECRET_KEY (or SECRET_KEY_FILE) to a random string of at least 50 characters, "
        'for example the output of: python3 -c "import secrets; print(secrets.token_urlsafe(64))"'
    )
if not SECRET_KEY:
    raise ImproperlyConfigured(
        "SECRET_KEY is not set. Run `make run` once (it writes a local .env), "
        "or set SECRET_KEY in the environment."
    )

# Keys for reversible secrets at rest (API secrets): see heyloyalty/keys.py.
FIELD_ENCRYPTION_KEYS = env.get("FIELD_ENCRYPTION_KEYS")
if not DEBUG and not FIELD_ENCRYPTION_KEYS:
    raise ImproperlyConfigured(
        "FIELD_ENCRYPTION_KEYS is not set. With DEBUG off Heyloyalty will not start without it. "
        'Set it to "k1:<key>", the key made by: python3 -c '
        '"from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
    )

ALLOWED_HOSTS = env.get_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG else "")
PUBLIC_URL = env.get("PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")
CSRF_TRUSTED_ORIGINS = env.get_list("CSRF_TRUSTED_ORIGINS", PUBLIC_URL)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    # Two-factor sign-in (TOTP), required for staff (accounts/two_factor.py); the CSP header.
    "django_otp",
    "django_otp.plugins.otp_totp",
    "csp",
    "anymail",
    "heyloyalty",
    "accounts",
    "members",
    "campaigns",
    "audit",
    "backups",
    "monitoring",
]

MIDDLEWARE = [
    # X-Forwarded-Proto only from TRUSTED_PROXIES: from anyone else it is dropped first.
    "heyloyalty.proxy.UntrustedProxyHeadersMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # A view that fails because the database or Redis is away answers 503 with the
    # incident banner, never 500 (monitoring/outage.py).
    "monitoring.middleware.OutageMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # request.user.is_verified(): has this session given the second factor?
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # A session that still owes the second factor (staff; customers who turned it on)
    # reaches only the code page (accounts/two_factor.py); before anything acts for it.
    "accounts.middleware.TwoFactorRequiredMiddleware",
    "accounts.middleware.PasswordChangeRequiredMiddleware",
    # Staff working in a customer's dashboard on their behalf; before the audit middleware.
    "accounts.middleware.ActingAsMiddleware",
    # Checks (consent) and logs every request by staff that touches a customer account.
    "audit.middleware.StaffAuditMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a lockout into the 429 page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "heyloyalty.urls"
WSGI_APPLICATION = "heyloyalty.wsgi.application"

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
            ],
        },
    },
]

# Database: the embedded PostgreSQL of `make run` unless DATABASE_URL says otherwise.
DATABASE_URL = env.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5433/heyloyalty")
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL, conn_max_age=env.get_int("DB_CONN_MAX_AGE", 60), conn_health_checks=True
    )
}
# Test runs on one server can go on at once (CI, a developer, helpers): each names its own.
if test_db := env.get("TEST_DATABASE_NAME"):
    DATABASES["default"]["TEST"] = {"NAME": test_db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Redis: Celery's broker and the cache. Holds nothing that cannot be rebuilt.
REDIS_URL = env.get("REDIS_URL", "redis://127.0.0.1:6380/0")
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "hl",
    }
}

# Accounts and sign-in
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    # Only to verify hashes imported from elsewhere; every new hash is argon2id.
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator",
        "OPTIONS": {"user_attributes": ("email", "name")},
    },
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "accounts:home"
LOGOUT_REDIRECT_URL = "accounts:login"
SESSION_COOKIE_AGE = env.get_int("SESSION_COOKIE_AGE", 60 * 60 * 12)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_FAILURE_VIEW = "accounts.views.csrf_failure"

# django-axes: 5 failures for one email from one IP within an hour lock that pair
# for an hour. Other emails and other IPs are unaffected.
AXES_FAILURE_LIMIT = env.get_int("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env.get_int("LOGIN_LOCKOUT_MINUTES", 60))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# The pause lasts exactly the cool-off from the lockout, as the lockout page says;
# attempts during it do not extend it.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_TEMPLATE = "accounts/locked_out.html"
AXES_HTTP_RESPONSE_CODE = 429
AXES_USERNAME_CALLABLE = "accounts.signin.axes_username"
AXES_CLIENT_IP_CALLABLE = "heyloyalty.net.client_ip"
AXES_SENSITIVE_PARAMETERS = ["password", "password1", "password2", "new_password1"]
# Proxies whose X-Forwarded-For we believe (IPs or CIDR ranges). Empty: none.
TRUSTED_PROXIES = env.get_list("TRUSTED_PROXIES")

# Internationalisation: English with a Danish translation.
LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("da", _("Danish"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "Europe/Copenhagen"
USE_I18N = True
USE_TZ = True

# Static files are served by the app itself (WhiteNoise): no CDN, works offline.
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if env.get_bool("STATIC_MANIFEST", not DEBUG)
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG

# Mail: the local SMTP sink of `make run` unless SMTP_URL says otherwise.
SMTP_URL = env.get("SMTP_URL", "smtp://127.0.0.1:1025")
globals().update(env.parse_smtp_url(SMTP_URL))
EMAIL_BACKEND = env.get("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_TIMEOUT = env.get_int("EMAIL_TIMEOUT", 30)
DEFAULT_FROM_EMAIL = env.get("DEFAULT_FROM_EMAIL", "Heyloyalty <noreply@localhost>")
SERVER_EMAIL = env.get("SERVER_EMAIL", DEFAULT_FROM_EMAIL)
ALERT_EMAILS = env.get_list("ALERT_EMAILS")
# DKIM signing of campaign mail: on when all three are set. The key is PEM text (from
# DKIM_PRIVATE_KEY or the file named by DKIM_PRIVATE_KEY_FILE); the public half is
# published as a TXT record at <selector>._domainkey.<domain>.
DKIM_PRIVATE_KEY = env.get("DKIM_PRIVATE_KEY")
DKIM_SELECTOR = env.get("DKIM_SELECTOR")
DKIM_DOMAIN = env.get("DKIM_DOMAIN")
# ESPs through django-anymail: EMAIL_BACKEND names the ESP's backend (for example
# anymail.backends.postmark.EmailBackend) and each ANYMAIL_<SETTING> variable (or
# ANYMAIL_<SETTING>_FILE) becomes ANYMAIL["<SETTING>"]: ANYMAIL_POSTMARK_SERVER_TOKEN, ….
# ANYMAIL_WEBHOOK_SECRET ("user:pass") is the basic auth that the ESP's tracking webhook
# (/anymail/<esp>/tracking/) must send. Unset, a random one closes the webhooks: anymail
# would otherwise accept anyone's bounces with only a warning.
ANYMAIL: dict[str, str] = {
    name.removeprefix("ANYMAIL_"): env.get(name)
    for name in sorted({n.removesuffix("_FILE") for n in os.environ if n.startswith("ANYMAIL_")})
}
ANYMAIL.setdefault("WEBHOOK_SECRET", f"{secrets.token_hex(16)}:{secrets.token_hex(32)}")
# VERP: campaigns go out with the envelope sender bounces+<token>@BOUNCE_DOMAIN and a
# List-Unsubscribe mailto unsubscribe+<token>@BOUNCE_DOMAIN; the MTA for that domain
# pipes both to `manage.py mail_receive` (README, "Bounces and unsubscribes by mail").
BOUNCE_DOMAIN = env.get("BOUNCE_DOMAIN", urlsplit(PUBLIC_URL).hostname or "localhost")

# Celery: JSON only, bounded run times, tasks queued after commit (see services).
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_SOFT_TIME_LIMIT = env.get_int("CELERY_TASK_SOFT_TIME_LIMIT", 300)
CELERY_TASK_TIME_LIMIT = env.get_int("CELERY_TASK_TIME_LIMIT", 330)
# acks_late is switched on per task, for the idempotent ones only (see each tasks.py).
CELERY_TASK_ACKS_LATE = False
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_CONCURRENCY = env.get_int("WORKER_CONCURRENCY", 0) or None  # None: one per CPU
# A message not acknowledged within this many seconds is delivered again. Every
# retry countdown and ETA must stay below it.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# Tests and benchmarks give each run a queue of its own.
CELERY_TASK_DEFAULT_QUEUE = env.get("CELERY_QUEUE", "celery")

# The sending pipeline (campaigns/pipeline.py).
# Tasks that work through one campaign at the same time (spread over the workers).
SEND_PARALLELISM = env.get_int("SEND_PARALLELISM", 4)
SEND_BATCH_SIZE = env.get_int("SEND_BATCH_SIZE", 100)  # rows claimed at a time
# Recipients written in a first, small transaction so the first messages go out while
# the rest of the recipient set is written.
SEND_FIRST_CHUNK = env.get_int("SEND_FIRST_CHUNK", 2000)
# Messages the relay accepted are marked sent this many at a time (or every 50 ms): a
# worker killed in between sends at most this many of its messages again.
SEND_MARK_BATCH = env.get_int("SEND_MARK_BATCH", 10)
# A task sends for about this long, then queues itself again at the back of the queue,
# so that the campaigns and accounts waiting take turns.
SEND_TASK_SECONDS = env.get_int("SEND_TASK_SECONDS", 2)
# Rows claimed longer ago than this by a worker that shows no life are claimed again.
SEND_CLAIM_LEASE_SECONDS = env.get_int("SEND_CLAIM_LEASE_SECONDS", 120)
# A sending campaign with no sign of life for this long is restarted by the reaper.
SEND_STALL_SECONDS = env.get_int("SEND_STALL_SECONDS", 60)
# SEND_REAPER_SECONDS: how often the reaper runs, read by heyloyalty/schedule.py.
# Waits after a relay's 4xx, one per attempt; all far below the broker's visibility timeout.
SEND_RETRY_DELAYS = [int(s) for s in env.get_list("SEND_RETRY_DELAYS", "60,300,900,1800")]
# This many refused recipients in a row pause the campaign and tell its owner.
SEND_FAILURES_IN_ROW = env.get_int("SEND_FAILURES_IN_ROW", 50)
# Messages per second; 0 is no limit. Per account, and for the relay as a whole.
SEND_RATE_PER_ACCOUNT = env.get_int("SEND_RATE_PER_ACCOUNT", 0)
SEND_RATE_RELAY = env.get_int("SEND_RATE_RELAY", 0)

# Outbound webhooks (members/webhook_delivery.py). Waits before each retry of a failed
# delivery, kept in the database (next_attempt_at) and picked up by a beat job, so they
# may exceed the broker's visibility timeout; the last try comes after the last wait.
WEBHOOK_RETRY_DELAYS = [
    int(s) for s in env.get_list("WEBHOOK_RETRY_DELAYS", "60,300,1800,7200,21600")
]
WEBHOOK_TIMEOUT_SECONDS = env.get_int("WEBHOOK_TIMEOUT_SECONDS", 5)  # the whole request
# This many failed tries in a row switch a webhook off and tell its owners.
WEBHOOK_FAILURES_TO_DISABLE = env.get_int("WEBHOOK_FAILURES_TO_DISABLE", 10)
# Private, loopback and link-local targets are refused, at create and at connect time,
# unless this is on: for a receiver on your own machine in development and tests only.
WEBHOOK_ALLOW_PRIVATE = env.get_bool("WEBHOOK_ALLOW_PRIVATE", False)
WEBHOOK_LOG_DAYS = env.get_int("WEBHOOK_LOG_DAYS", 30)  # finished deliveries kept this long
# WEBHOOK_BEAT_SECONDS: how often due retries are picked up, read by heyloyalty/schedule.py.

# Tracking (campaigns/tracking.py): opens and clicks wait in this Redis list (and
# "<key>:processing" while a batch is written) until they are written to PostgreSQL in
# batches. Deployments or test runs that share one Redis database each need their own.
TRACKING_BUFFER_KEY = env.get("TRACKING_BUFFER_KEY", "hl:tracking")
# TRACKING_FLUSH_SECONDS: how often the buffer is written, read by heyloyalty/schedule.py.

# REST API
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "heyloyalty.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
}
# Allowed clock difference for X-Request-Timestamp. Long-lived PHP workers sign once and
# reuse the timestamp (heyloyalty-api.md §2.3), so it is generous.
API_CLOCK_WINDOW_SECONDS = env.get_int("API_CLOCK_WINDOW_SECONDS", 900)
API_RATE = env.get("API_RATE", "60000/min")
API_SIGNATURE_FAILURE_LIMIT = env.get_int("API_SIGNATURE_FAILURE_LIMIT", 30)
API_SIGNATURE_FAILURE_WINDOW_SECONDS = 600
# List definitions and multi-choice values explode into many keys (§3.2 rule 8).
DATA_UPLOAD_MAX_NUMBER_FIELDS = 10000
IMPORT_MAX_BYTES = env.get_int("IMPORT_MAX_BYTES", 200 * 1024 * 1024)
# Uploaded import files and error reports. Shared storage when workers run on other hosts.
IMPORT_DIR = Path(env.get("IMPORT_DIR", str(VAR_DIR / "imports")))

# Backups (backups/, README "Backups and keys"). Files are encrypted with the first of
# BACKUP_ENCRYPTION_KEYS (id:YYYY-MM-DD:key, newest first; the others still open older
# files) and kept in BACKUP_DIR, and in S3-compatible storage when BACKUP_S3_BUCKET is set.
BACKUP_DIR = Path(env.get("BACKUP_DIR", str(VAR_DIR / "backups")))
BACKUP_ENCRYPTION_KEYS = env.get("BACKUP_ENCRYPTION_KEYS")
BACKUP_S3_BUCKET = env.get("BACKUP_S3_BUCKET")
BACKUP_S3_PREFIX = env.get("BACKUP_S3_PREFIX", "heyloyalty/")
BACKUP_S3_ENDPOINT_URL = env.get("BACKUP_S3_ENDPOINT_URL")  # empty: AWS itself
BACKUP_S3_REGION = env.get("BACKUP_S3_REGION")
BACKUP_S3_ACCESS_KEY_ID = env.get("BACKUP_S3_ACCESS_KEY_ID")
BACKUP_S3_SECRET_ACCESS_KEY = env.get("BACKUP_S3_SECRET_ACCESS_KEY")
# Retention: every hourly backup this many hours, every three-hourly one this many days,
# and the first backup of each day this many days.
BACKUP_KEEP_HOURLY_HOURS = env.get_int("BACKUP_KEEP_HOURLY_HOURS", 48)
BACKUP_KEEP_THREE_HOURLY_DAYS = env.get_int("BACKUP_KEEP_THREE_HOURLY_DAYS", 14)
BACKUP_KEEP_DAILY_DAYS = env.get_int("BACKUP_KEEP_DAILY_DAYS", 90)
# A backup is not started unless the disk holding BACKUP_DIR keeps this much free after it.
BACKUP_MIN_FREE_BYTES = env.get_int("BACKUP_MIN_FREE_BYTES", 512 * 1024 * 1024)
# Restore drills make a scratch database on this server (CREATEDB needed); empty: the
# server of DATABASE_URL.
BACKUP_DRILL_DATABASE_URL = env.get("BACKUP_DRILL_DATABASE_URL")
# A backup this late (minutes past its slot) is missed, and an alert.
BACKUP_GRACE_MINUTES = env.get_int("BACKUP_GRACE_MINUTES", 30)
# System keys (heyloyalty/keys.py): a key older than this is due for rotation (an alert),
# and a replaced SECRET_KEY keeps verifying links already mailed for this long.
KEY_ROTATION_DAYS = env.get_int("KEY_ROTATION_DAYS", 90)
SECRET_KEY_RETIRE_DAYS = env.get_int("SECRET_KEY_RETIRE_DAYS", 365)

# Monitoring (monitoring/, README "Monitoring"). Workers and beat write a heartbeat every
# MONITOR_HEARTBEAT_SECONDS; one older than MONITOR_STALE_SECONDS is down. The watchdog
# checks every MONITOR_WATCHDOG_SECONDS, so a failure is alerted within about 30 s.
MONITOR_HEARTBEAT_SECONDS = env.get_int("MONITOR_HEARTBEAT_SECONDS", 5)
MONITOR_STALE_SECONDS = env.get_int("MONITOR_STALE_SECONDS", 20)
MONITOR_WATCHDOG_SECONDS = env.get_int("MONITOR_WATCHDOG_SECONDS", 5)
MONITOR_CHECK_TIMEOUT_SECONDS = env.get_int("MONITOR_CHECK_TIMEOUT_SECONDS", 3)
# An incident closes after this long with every check green (no open/close storms).
MONITOR_RECOVERY_SECONDS = env.get_int("MONITOR_RECOVERY_SECONDS", 10)
MONITOR_REMINDER_MINUTES = env.get_int("MONITOR_REMINDER_MINUTES", 60)
# A beat job is late after its period plus this, plus half its period (at most 30 minutes).
MONITOR_JOB_GRACE_SECONDS = env.get_int("MONITOR_JOB_GRACE_SECONDS", 60)
MONITOR_BACKUP_MAX_AGE_MINUTES = env.get_int("MONITOR_BACKUP_MAX_AGE_MINUTES", 120)
# The current status (open incidents, last checks) as the watchdog last saw it, for the
# banner when the database is down: this file (shared by the web processes of one host)
# and a Redis key.
MONITOR_STATUS_FILE = Path(env.get("MONITOR_STATUS_FILE", str(VAR_DIR / "monitor" / "status.json")))
MONITOR_KEY_PREFIX = env.get("MONITOR_KEY_PREFIX", "hl:monitor")
# Optional: alerts also POSTed here as JSON (signed with MONITOR_WEBHOOK_SECRET when set).
MONITOR_WEBHOOK_URL = env.get("MONITOR_WEBHOOK_URL")
MONITOR_WEBHOOK_SECRET = env.get("MONITOR_WEBHOOK_SECRET")
# Optional: the watchdog also checks <MONITOR_WEB_URL>/healthz.
MONITOR_WEB_URL = env.get("MONITOR_WEB_URL")
# Optional: alerts go through this relay (smtp://…, as SMTP_URL), so that they still go
# out when the relay that sends campaigns is the thing that broke. Empty: SMTP_URL.
ALERT_SMTP_URL = env.get("ALERT_SMTP_URL")

SPECTACULAR_SETTINGS = {
    "TITLE": "Heyloyalty API",
    "DESCRIPTION": "Wire-compatible with Heyloyalty's /loyalty/v1 API.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI served by the app itself, not from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        # 401, 403, 429 and 503 can come from any operation (heyloyalty/api/schema_errors.py).
        "heyloyalty.api.schema_errors.add_common_errors",
    ],
}

# Security. Issue 8 tightens this further; these hold from the start.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if TRUSTED_PROXIES else None
SECURE_SSL_REDIRECT = env.get_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SECURE_HSTS_SECONDS = env.get_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = env.get_bool("SECURE_HSTS_PRELOAD", not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_SECURE = env.get_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env.get_bool("CSRF_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_HTTPONLY = True
LANGUAGE_COOKIE_SECURE = SESSION_COOKIE_SECURE
LANGUAGE_COOKIE_HTTPONLY = True
LANGUAGE_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy (django-csp; Django 5.2 has none of its own). Scripts only from
# us (an inline one needs the request's nonce); styles and images may be inline or remote
# because customers' own campaign HTML is previewed in a sandboxed frame.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'", NONCE],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:", "https:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "frame-src": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
        "base-uri": ["'self'"],
        "object-src": ["'none'"],
    }
}
# Two-factor sign-in (accounts/two_factor.py): the name authenticator apps show.
OTP_TOTP_ISSUER = env.get("OTP_TOTP_ISSUER", "Heyloyalty")
# django-otp's throttling (its default, stated so that nobody turns it off unawares): after
# n wrong codes in a row a device checks no code for 2^(n-1) s; the code page says so.
OTP_TOTP_THROTTLE_FACTOR = 1

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.get("LOG_LEVEL", "INFO")},
    "loggers": {"axes": {"level": "WARNING"}},
}
