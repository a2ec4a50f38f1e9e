"""Skyline's settings, read once from the environment.

With no settings at all Skyline runs embedded: ClickHouse in process (chDB) and SQLite, both
under SKYLINE_DATA_DIR, with an in-process cache and task runner. CLICKHOUSE_URL, DATABASE_URL
and REDIS_URL move each store to a server.
"""

import importlib.util
import logging.config
import os
import secrets
import sys
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from skyline.db.cluster import CLUSTER_NAME
from skyline.env import Environment, clickhouse_server, local_endpoint, origin, service_did
from skyline.logs import CLIENT_FAULT_LOGGERS, client_fault_as_warning

env = Environment(os.environ)

BASE_DIR = Path(__file__).resolve().parent.parent
# django-ninja's templates and static files (the API docs' Swagger UI, served offline, not from a
# CDN), found without importing ninja: as an installed app it loaded pydantic into every process,
# a fifth of a second at each start of a command that never serves the API.
NINJA_DIR = Path(importlib.util.find_spec("ninja").origin).parent
DATA_DIR = Path(env.str("SKYLINE_DATA_DIR") or BASE_DIR / "var").resolve()
try:
    DATA_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Sessions, password hashes, the secret key and the index live here: private to our user, also
    # in a data directory made before Skyline made it so.
    if DATA_DIR.stat().st_uid == os.getuid():
        DATA_DIR.chmod(0o700)
except OSError as exc:
    raise ImproperlyConfigured(f"SKYLINE_DATA_DIR {str(DATA_DIR)!r} cannot be created: {exc.strerror}") from None


def _private_file(path):
    """Create `path` empty and readable by us only, unless it exists."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))


def _secret_key():
    """SECRET_KEY, or one generated on first start and kept (readable by us only) in the data dir."""
    given = env.str("SECRET_KEY")
    if given:
        return given
    path = DATA_DIR / "secret_key"
    if not path.exists():
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env.bool("DEBUG", False)

# The public services by default; tests and operators point these elsewhere.
JETSTREAM_URL = env.url("JETSTREAM_URL", "wss://jetstream1.us-east.bsky.network/subscribe", ("ws", "wss"))
# The firehose consumer (manage.py consume_firehose). Jetstream's time_us is not monotonic, so a
# restart resumes this many seconds before the saved cursor (re-delivered events change nothing).
JETSTREAM_REWIND_SECONDS = env.float("JETSTREAM_REWIND_SECONDS", 5.0, minimum=0)
JETSTREAM_BATCH_SIZE = env.int("JETSTREAM_BATCH_SIZE", 20_000, minimum=1)
JETSTREAM_FLUSH_SECONDS = env.float("JETSTREAM_FLUSH_SECONDS", 1.0, minimum=0.01)
JETSTREAM_RECEIVE_TIMEOUT = env.float("JETSTREAM_RECEIVE_TIMEOUT", 30.0, minimum=0.01)
JETSTREAM_MAX_EVENT_BYTES = env.int("JETSTREAM_MAX_EVENT_BYTES", 1_000_000, minimum=1024)
# A zstd dictionary file turns on Jetstream's `compress=true` mode (instead of permessage-deflate).
JETSTREAM_ZSTD_DICTIONARY = env.str("JETSTREAM_ZSTD_DICTIONARY")
PLC_URL = env.url("PLC_URL", "https://plc.directory").rstrip("/")
# The PLC exporter (manage.py export_plc, and a thread of `serve`) copies the directory's operation
# log into plc_operations: pages of 1000 at most PLC_EXPORT_RATE a second, a page every
# PLC_EXPORT_IDLE_SECONDS once caught up.
PLC_EXPORT = env.bool("PLC_EXPORT", True)
PLC_EXPORT_RATE = env.float("PLC_EXPORT_RATE", 1.5, minimum=0.01)
PLC_EXPORT_IDLE_SECONDS = env.float("PLC_EXPORT_IDLE_SECONDS", 10.0, minimum=0.01)
# Unset: handles resolve through DNS and https://<handle>/.well-known/atproto-did. Set it to an
# XRPC service (an AppView or PDS) to use its com.atproto.identity.resolveHandle instead.
HANDLE_RESOLVER_URL = env.url("HANDLE_RESOLVER_URL", "").rstrip("/")
# Calls to addresses the network chooses (a PDS, a did:web host, a handle's domain) go only to public
# addresses over https. Turn this on for local stand-ins (tests, development) only: see README, Security.
OUTBOUND_ALLOW_PRIVATE = env.bool("OUTBOUND_ALLOW_PRIVATE", False)
# `manage.py serve` listens on SKYLINE_BIND (`make run BIND=...` sets it); unless SERVICE_ENDPOINT is
# given, the service's URL (and so its did:web) follows it, so a development server describes itself.
SERVE_BIND = env.address("SKYLINE_BIND")
SERVICE_ENDPOINT = env.url(
    "SERVICE_ENDPOINT", local_endpoint(SERVE_BIND) if SERVE_BIND else "http://localhost:8000").rstrip("/")
SERVICE_DID = env.did("SERVICE_DID", service_did(SERVICE_ENDPOINT))
FEED_ACTOR_DID = env.did("FEED_ACTOR_DID", SERVICE_DID)
# `manage.py publish_feeds` (and the Feed admin's publish actions) sign in as FEED_ACTOR_DID with this
# app password to write the feeds' app.bsky.feed.generator records, with FEED_AVATAR (a .png or .jpg) as
# their avatar.
FEED_ACTOR_APP_PASSWORD = env.str("FEED_ACTOR_APP_PASSWORD")
FEED_AVATAR = env.str("FEED_AVATAR")
# How long a computed feed list stays pageable (a cursor into an older list ends the feed), and
# how long feed request analytics and interactions are kept.
FEED_SNAPSHOT_SECONDS = env.int("FEED_SNAPSHOT_SECONDS", 3600, minimum=60)
FEED_ANALYTICS_DAYS = env.int("FEED_ANALYTICS_DAYS", 90, minimum=1)

# The first admin user: `make run` (manage.py ensure_superuser) creates it when no superuser exists yet.
SUPERUSER_USERNAME = env.str("DJANGO_SUPERUSER_USERNAME")
SUPERUSER_EMAIL = env.str("DJANGO_SUPERUSER_EMAIL")
SUPERUSER_PASSWORD = env.str("DJANGO_SUPERUSER_PASSWORD")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
# How many reverse proxies (each appending to X-Forwarded-For) stand in front of the web role.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", 0, minimum=0)
_service_host = SERVICE_ENDPOINT.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[0]
if _service_host not in ALLOWED_HOSTS and "*" not in ALLOWED_HOSTS:
    ALLOWED_HOSTS.append(_service_host)

# Behind a TLS proxy (README, "Behind a proxy"). The admin's forms are posted from SERVICE_ENDPOINT's
# origin or one of CSRF_TRUSTED_ORIGINS; only the trusted proxies' X-Forwarded-Proto says a request
# came over https. An https SERVICE_ENDPOINT makes the cookies Secure and sends HSTS.
CSRF_TRUSTED_ORIGINS = [origin(SERVICE_ENDPOINT), *env.origins("CSRF_TRUSTED_ORIGINS")]
if TRUSTED_PROXY_COUNT:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
_https = SERVICE_ENDPOINT.startswith("https://")
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = _https
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", 31_536_000 if _https else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", False)
# Only trusted proxies tell an https request apart: without them every request looks like http and
# would be redirected to itself.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", _https and TRUSTED_PROXY_COUNT > 0)
# Health probes and metrics scrapers ask from inside the network, over plain http.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
# The preload directive lets anyone list the whole registrable domain as https-only in browsers:
# that is the domain owner's choice (SECURE_HSTS_PRELOAD), not a default of one service on it.
SILENCED_SYSTEM_CHECKS = ["security.W021"]

INSTALLED_APPS = [
    "skyline",
    "django.contrib.admin.apps.SimpleAdminConfig",  # admin.autodiscover() runs in skyline/urls.py
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_beat",
    "corsheaders",
    "apps.indexer",
    "apps.feeds",
    "apps.search",
    "apps.accounts",
    "apps.seed_import",
]
# The consumer's own process (`manage.py consume_firehose`) loads only the apps indexing uses: the
# admin, the APIs, the feeds and Celery's beat models were a quarter of its start-up. (Its checks
# and migration check then cover those apps; every other role, `serve` included, has them all.)
INDEXING_ONLY = Path(sys.argv[0]).name == "manage.py" and sys.argv[1:2] == ["consume_firehose"]
if INDEXING_ONLY:
    INSTALLED_APPS = ["skyline", "apps.indexer"]

MIDDLEWARE = [
    "skyline.metrics.RequestMetricsMiddleware",
    "skyline.health.StoreUnavailableMiddleware",
    "corsheaders.middleware.CorsMiddleware",  # before CommonMiddleware; answers preflights itself
    # Outside every middleware that answers on its own, so each of their 404/405s is seen.
    "skyline.api_errors.JsonApiErrorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Answers getFeedSkeleton here: the middleware below has nothing to do for it.
    "skyline.hot_paths.HotPathMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "skyline.urls"
WSGI_APPLICATION = "skyline.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates", NINJA_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

CLICKHOUSE_URL = env.url("CLICKHOUSE_URL", "", ("clickhouse", "clickhouses"))
CLICKHOUSE_PATH = DATA_DIR / "clickhouse"
DATABASE_URL = env.url("DATABASE_URL", "", ("postgres", "postgresql", "sqlite"))

if DATABASE_URL:
    _default_db = dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)
else:
    _default_db = {"ENGINE": "django.db.backends.sqlite3", "NAME": DATA_DIR / "skyline.sqlite3"}
    # SQLite would create it 0644 (and its journals take its mode).
    _private_file(_default_db["NAME"])

if CLICKHOUSE_URL:
    _clickhouse_db = clickhouse_server(CLICKHOUSE_URL)
else:
    CLICKHOUSE_PATH.mkdir(mode=0o700, exist_ok=True)
    _clickhouse_db = {
        "ENGINE": "skyline.db.chdb",
        "NAME": "default",
        "OPTIONS": {"path": CLICKHOUSE_PATH},
        # Sessions are kept: reopening costs little, but there is no reason to pay it per request.
        "CONN_MAX_AGE": None,
    }

# Cluster mode (skyline/db/cluster.py): migrations create replicated tables ON CLUSTER, read and
# written through Distributed tables of the same names.
CLICKHOUSE_CLUSTER = env.str("CLICKHOUSE_CLUSTER")
if CLICKHOUSE_CLUSTER:
    if not CLICKHOUSE_URL:
        raise ImproperlyConfigured("CLICKHOUSE_CLUSTER needs CLICKHOUSE_URL (a server of the cluster)")
    if not CLUSTER_NAME.fullmatch(CLICKHOUSE_CLUSTER):
        raise ImproperlyConfigured(f"CLICKHOUSE_CLUSTER {CLICKHOUSE_CLUSTER!r} is not a cluster name")
    _clickhouse_db["CLUSTER"] = CLICKHOUSE_CLUSTER
    # django-clickhouse-backend then records applied migrations cluster-wide too.
    _clickhouse_db["OPTIONS"].update(migration_cluster=CLICKHOUSE_CLUSTER, distributed_migrations=True)

DATABASES = {"default": _default_db, "clickhouse": _clickhouse_db}
DATABASE_ROUTERS = ["skyline.routers.ClickhouseRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.url("REDIS_URL", "", ("redis", "rediss", "unix"))
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    # Feed snapshots, DID documents, API keys and rate-limit counters all live here: room for many.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "skyline",
            "OPTIONS": {"MAX_ENTRIES": 100_000},
        }
    }

CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_RESULT_BACKEND = REDIS_URL or None
CELERY_RESULT_EXPIRES = 3600
# Schedules are rows edited in the admin (django-celery-beat); `celery beat` reads them, and on the
# embedded default the in-process scheduler (skyline/scheduler.py) reads the same rows.
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"

# Repo clean-up jobs keep the seed's limits: applyWrites calls of at most 10 deletes, at most 4 calls
# a second, 4,000 deletes a run, a run an hour, 30,000 deletes a UTC day. A run that fails transiently
# is tried again after the retry interval.
CLEANUP_DELETES_PER_CALL = 10
CLEANUP_CALLS_PER_SECOND = 4.0
CLEANUP_DELETES_PER_RUN = 4000
CLEANUP_DELETES_PER_DAY = 30000
CLEANUP_RUN_INTERVAL = 3600
CLEANUP_RETRY_INTERVAL = 300
# Members the index cannot name get their handle and display name from this AppView's getProfiles
# (a scheduled task; pages read the cache only). Calls end after APPVIEW_TIMEOUT seconds in all.
APPVIEW_URL = env.url("APPVIEW_URL", "https://public.api.bsky.app").rstrip("/")
APPVIEW_TIMEOUT = 10.0
PROFILE_CACHE_SECONDS = 86_400
# Accounts hosted on Bluesky's PDSs (*.host.bsky.network), and logins by email, sign in here.
ENTRYWAY_URL = env.url("ENTRYWAY_URL", "https://bsky.social").rstrip("/")

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(mode=0o700, exist_ok=True)
STATICFILES_DIRS = [NINJA_DIR / "static"]
# The admin's static files are served by the app itself (WhiteNoise), from the finders in
# development and from STATIC_ROOT (collectstatic) in production.
WHITENOISE_USE_FINDERS = True
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Logs: readable lines on a terminal, JSON lines otherwise (production), or as LOG_FORMAT says.
LOG_FORMAT = env.str("LOG_FORMAT", "auto").lower()
if LOG_FORMAT not in ("auto", "text", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be auto, text or json, not {LOG_FORMAT!r}")
if LOG_FORMAT == "auto":
    LOG_FORMAT = "text" if sys.stderr.isatty() else "json"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    # What anonymous clients cause (a Host not allowed, too many fields, an unknown XRPC method...) is
    # one WARNING line without a traceback, not an ERROR (skyline/logs.py).
    "filters": {
        "client_faults": {"()": "django.utils.log.CallbackFilter", "callback": client_fault_as_warning},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "loggers": {
        "django": {"level": "INFO"},  # as Django's defaults: no query text (DEBUG) even when DEBUG is on
        **{name: {"filters": ["client_faults"]} for name in CLIENT_FAULT_LOGGERS},
    },
    "root": {"handlers": ["console"], "level": "DEBUG" if DEBUG else "INFO"},
}
# Applied here, alone: Django's own defaults (applied first unless LOGGING_CONFIG is None) add nothing
# Skyline uses (a console handler for DEBUG, which the root one covers, and a mail_admins handler with
# no ADMINS to mail) and their mail handler loaded Django's debug views and template engine into every
# process, the consumer's included (20-150 ms of each start-up).
LOGGING_CONFIG = None
logging.config.dictConfig(LOGGING)

# Browsers on other origins (django-cors-headers) may call the public read and job endpoints only, and
# only from CORS_ALLOWED_ORIGINS (`*`: any). None by default, as in the seed, which allowed its own
# front-end only: POST /repo/cleanup takes app passwords, and which sites may send them from a browser
# is the operator's choice. No cookies are ever honoured cross-origin. The label API (X-API-Key) joins
# only with CORS_LABEL_API; the admin, /metrics and getFeedSkeleton (called by AppViews, server to
# server, with a service token no browser holds; the hot path stays free of CORS work) never do.
_cors_origins = env.list("CORS_ALLOWED_ORIGINS")
CORS_ALLOW_ALL_ORIGINS = _cors_origins == ["*"]
CORS_ALLOWED_ORIGINS = [] if CORS_ALLOW_ALL_ORIGINS else env.origins("CORS_ALLOWED_ORIGINS")
CORS_LABEL_API = env.bool("CORS_LABEL_API", False)
_cors_paths = [
    r"api/stats", r"stats", r"api/search/posts", r"repo/[^/]+", r"repo/cleanup/stats", r"list/members", r"redir",
    r"xrpc/app\.bsky\.feed\.describeFeedGenerator", r"\.well-known/did\.json",
]
if CORS_LABEL_API:
    _cors_paths += [r"api/admin/feed_members", r"api/admin/feeds", r"assign_user_to_feed",
                    r"unassign_user_from_feed", r"feed_members"]
CORS_URLS_REGEX = rf"^/({'|'.join(_cors_paths)})$"
CORS_ALLOW_METHODS = ("GET", "PUT", "POST", "DELETE", "OPTIONS")
CORS_ALLOW_HEADERS = ("accept", "authorization", "content-type", "x-api-key")
CORS_PREFLIGHT_MAX_AGE = 3600

# Observability: Prometheus metrics for every role; tracing only when an OTLP endpoint is given.
SERVICE_NAME = env.str("SERVICE_NAME", "skyline")
OTEL_EXPORTER_OTLP_ENDPOINT = env.url("OTEL_EXPORTER_OTLP_ENDPOINT", "")
TRACING_SAMPLE_RATIO = env.float("TRACING_SAMPLE_RATIO", 1.0, minimum=0.0)
PROMETHEUS_MULTIPROC_DIR = env.str("PROMETHEUS_MULTIPROC_DIR")
# Roles without a web server (consume_firehose, celery worker and beat) serve /metrics on this port.
METRICS_PORT = env.int("METRICS_PORT", 0, minimum=0)
