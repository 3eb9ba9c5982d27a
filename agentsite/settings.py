"""Settings, read once from the environment.

With no variables set the project runs embedded: SQLite, an in-process cache and channel
layer, and the offline demo model. ``DATABASE_URL``, ``REDIS_URL`` and ``ANTHROPIC_API_KEY``
switch each part to PostgreSQL, Redis and Claude. A malformed value stops start-up with a
message naming the variable.
"""

from __future__ import annotations

import ipaddress
import secrets
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.retry import Retry

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()


def _positive_int(name: str, default: int) -> int:
    value = env.int(name, default=default)
    if value <= 0:
        raise ImproperlyConfigured(f"{name} must be a positive integer, got {value!r}")
    return value


def _positive_float(name: str, default: float) -> float:
    value = env.float(name, default=default)
    if value <= 0:
        raise ImproperlyConfigured(f"{name} must be a positive number, got {value!r}")
    return value


# Where the embedded mode keeps its files (SQLite database, generated secret key).
VAR_DIR = Path(env.str("AGENTSITE_VAR_DIR", default=str(BASE_DIR / "var")))

DEBUG = env.bool("DEBUG", default=False)


def _secret_key() -> str:
    key = env.str("SECRET_KEY", default="")
    if key:
        return key
    # No key given: generate one per installation and keep it, so sessions survive restarts
    # and every process on this machine signs with the same key. Several machines need
    # SECRET_KEY set to one shared value.
    path = VAR_DIR / "secret_key"
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = _secret_key()

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "chat",
]

MIDDLEWARE = [
    # First: every log line of the request carries its id (LOG_FORMAT=json).
    "agentsite.logs.IdsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, so it sees the views' exceptions first: an outage is a 503, not a 500.
    "agentsite.outages.OutageMiddleware",
]

ROOT_URLCONF = "agentsite.urls"
ASGI_APPLICATION = "agentsite.asgi.application"

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
            ],
        },
    },
]

# --- Durable store (L2) -------------------------------------------------------------------
# SQLite, however it is named: IMMEDIATE takes the write lock at BEGIN, so concurrent writers
# queue on the busy timeout instead of failing with "database is locked" mid-transaction;
# WAL lets readers go on while one of them writes.
SQLITE_OPTIONS = {
    "transaction_mode": "IMMEDIATE",
    "timeout": 20,
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
}
if env.str("DATABASE_URL", default=""):
    DATABASES = {"default": env.db("DATABASE_URL")}
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DB_CONN_MAX_AGE", default=60))
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # Parameters sent apart from the query (no quoting on our side), and the queries a
        # process runs again and again prepared once per connection.
        DATABASES["default"].setdefault("OPTIONS", {}).setdefault("server_side_binding", True)
    if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
        DATABASES["default"]["OPTIONS"] = {**SQLITE_OPTIONS, **DATABASES["default"].get("OPTIONS", {})}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "agentsite.sqlite3",
            "OPTIONS": SQLITE_OPTIONS,
            # Tests use a file too: an in-memory shared-cache database fails concurrent
            # writers at once instead of waiting.
            "TEST": {"NAME": str(VAR_DIR / "test-agentsite.sqlite3")},
        }
    }
    VAR_DIR.mkdir(parents=True, exist_ok=True)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# A serving process collects its youngest generation of objects every this many
# allocations (CPython's default, 700, made a busy process spend a tenth of its CPU in the
# collector); what Django and the apps built at start is frozen out of its sight
# (agentsite.collector).
GC_YOUNG_THRESHOLD = _positive_int("GC_YOUNG_THRESHOLD", 20_000)
# Threads (each with its own database connection) that run the ORM work of async code
# (websocket runs), so that many sessions' queries do not queue behind one another.
DB_THREADS = _positive_int("DB_THREADS", 8)

# --- Cache (L1) ----------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
# A hung Redis must not hang a request: every socket operation gives up after this long
# and the request is answered from the database. After one such failure Redis is bypassed
# for REDIS_RETRY_INTERVAL, so a hang costs one timeout per process per interval; the
# timeouts leave room for a busy process's own event loop to get round to the answer.
REDIS_SOCKET_TIMEOUT = _positive_float("REDIS_SOCKET_TIMEOUT", 1.0)
REDIS_CONNECT_TIMEOUT = _positive_float("REDIS_CONNECT_TIMEOUT", 1.0)
# After a Redis failure the cache is bypassed for this long before it is tried again, so
# an outage costs one timeout per interval rather than one per request.
REDIS_RETRY_INTERVAL = _positive_float("REDIS_RETRY_INTERVAL", 2.0)
KEY_PREFIX = env.str("KEY_PREFIX", default="agentsite")
# Connections one process may open to Redis (message cache, event log, rate limit, hub).
REDIS_MAX_CONNECTIONS = _positive_int("REDIS_MAX_CONNECTIONS", 500)

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": KEY_PREFIX,
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                # Behind the process's Redis breaker (chat.redis_client): a hung Redis costs
                # one timeout per REDIS_RETRY_INTERVAL, not one per request.
                "REDIS_CLIENT_CLASS": "chat.redis_client.BreakerRedis",
                # A pooled connection Redis closed (it restarted) is retried once, fresh.
                "CONNECTION_POOL_KWARGS": {"retry": Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))},
                "SOCKET_CONNECT_TIMEOUT": REDIS_CONNECT_TIMEOUT,
                "SOCKET_TIMEOUT": REDIS_SOCKET_TIMEOUT,
                # Django-level uses (throttles) degrade to "no cache" rather than failing
                # the request when Redis is away.
                "IGNORE_EXCEPTIONS": True,
            },
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "agentsite",
            "KEY_PREFIX": KEY_PREFIX,
        }
    }
# No channel layer: a chat's events reach the sockets of the process that runs it directly,
# and other processes through Redis pub/sub (chat.runs.hub).
CHANNEL_LAYERS: dict[str, dict[str, object]] = {}

# --- Conversation storage -----------------------------------------------------------------
# How long a session's cached tail lives without being touched. The TTL also bounds how long
# a cache entry can stay stale if an invalidation could not reach Redis.
CHAT_CACHE_TTL = _positive_int("CHAT_CACHE_TTL", 3600)
# The cached tail keeps at most this many of a session's newest messages.
CHAT_CACHE_MAX_MESSAGES = _positive_int("CHAT_CACHE_MAX_MESSAGES", 400)
# Token budget of the history sent to the model on each call.
CHAT_CONTEXT_TOKENS = _positive_int("CHAT_CONTEXT_TOKENS", 100_000)
# When history outgrows the budget, the start of what is sent moves forward in steps of
# this many tokens, so the prompt-cache prefix stays the same for many turns.
CHAT_CONTEXT_CUT_STEP = _positive_int("CHAT_CONTEXT_CUT_STEP", 20_000)


def _share(name: str, default: float) -> float:
    value = env.float(name, default=default)
    if not 0 <= value < 1:
        raise ImproperlyConfigured(f"{name} must be a share of the context window from 0 to below 1, got {value!r}")
    return value


# Long chats (chat/compaction.py): when the next prompt would pass this share of the
# context budget, the oldest turns are replaced by a summary the model writes (0: never;
# the history is then only cut). What stays verbatim after a compaction is at most
# CHAT_COMPACT_KEEP of the budget (always the newest turn).
CHAT_COMPACT_AT = _share("CHAT_COMPACT_AT", 0.8)
CHAT_COMPACT_KEEP = _share("CHAT_COMPACT_KEEP", 0.3)
CHAT_SUMMARY_MAX_TOKENS = _positive_int("CHAT_SUMMARY_MAX_TOKENS", 2_000)
# Tool results older than the newest this-many turns are sent as a short stub when they
# are larger than one (kept whole in storage and the UI).
CHAT_TOOL_RESULT_KEEP_TURNS = _positive_int("CHAT_TOOL_RESULT_KEEP_TURNS", 3)

# --- Model ----------------------------------------------------------------------------------
ANTHROPIC_API_KEY = env.str("ANTHROPIC_API_KEY", default="")
ANTHROPIC_BASE_URL = env.str("ANTHROPIC_BASE_URL", default="") or None
ANTHROPIC_MODEL = env.str("ANTHROPIC_MODEL", default="claude-sonnet-4-6")
ANTHROPIC_MAX_TOKENS = _positive_int("ANTHROPIC_MAX_TOKENS", 4096)

# --- Auth, static, i18n -------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}

# --- Agent loop, tools and model calls ------------------------------------------------------
# A dotted path to a Provider class (or factory) that answers instead of Claude or the
# offline model; empty: Claude with ANTHROPIC_API_KEY, else the offline demo model.
AGENT_PROVIDER = env.str("AGENT_PROVIDER", default="")

def _non_negative(name: str, value: float) -> float:
    if value < 0:
        raise ImproperlyConfigured(f"{name} must be 0 or more, got {value!r}")
    return value


# Model calls one run may make before it is stopped with a "step_limit" error, so that a
# model that keeps calling tools cannot loop (and bill) forever.
AGENT_MAX_STEPS = _positive_int("AGENT_MAX_STEPS", 10)
# Seconds one tool call may take before it is abandoned and reported to the model as failed.
AGENT_TOOL_TIMEOUT = _positive_float("AGENT_TOOL_TIMEOUT", 30.0)
# The reply being streamed is written to the database at most this often (seconds), so a
# page opened mid-run, or a process that dies, still has what was streamed so far.
AGENT_STREAM_FLUSH_INTERVAL = _positive_float("AGENT_STREAM_FLUSH_INTERVAL", 1.0)
# Retries of one model call on 429, 529, 5xx and connection errors, with exponential
# backoff from the base delay, doubling each time up to the max delay; a server's
# retry-after is honoured up to that max. 0 disables retries.
ANTHROPIC_MAX_RETRIES = int(_non_negative("ANTHROPIC_MAX_RETRIES", env.int("ANTHROPIC_MAX_RETRIES", default=4)))
ANTHROPIC_RETRY_BASE_DELAY = _positive_float("ANTHROPIC_RETRY_BASE_DELAY", 1.0)
ANTHROPIC_RETRY_MAX_DELAY = _positive_float("ANTHROPIC_RETRY_MAX_DELAY", 30.0)
# Seconds without a byte from the API before a call counts as a connection error.
ANTHROPIC_TIMEOUT = _positive_float("ANTHROPIC_TIMEOUT", 120.0)
# Model that writes chat titles; a small, fast one is enough.
ANTHROPIC_TITLE_MODEL = env.str("ANTHROPIC_TITLE_MODEL", default="") or ANTHROPIC_MODEL
# Pause between the offline demo model's words (seconds), so streaming is visible in the
# UI; 0 streams at once (tests).
OFFLINE_MODEL_WORD_DELAY = _non_negative("OFFLINE_MODEL_WORD_DELAY", env.float("OFFLINE_MODEL_WORD_DELAY", default=0.02))
# Pause between the chunks an artifact is written in (seconds), so its progress is
# visible; 0 writes it at once (tests).
ARTIFACT_CHUNK_DELAY = _non_negative("ARTIFACT_CHUNK_DELAY", env.float("ARTIFACT_CHUNK_DELAY", default=0.05))

# --- Websocket runs and event log -----------------------------------------------------------
# Per session, the event log keeps this many newest events for replay on reconnect, for this
# many seconds after the last one.
EVENT_LOG_MAX_EVENTS = _positive_int("EVENT_LOG_MAX_EVENTS", 5000)
EVENT_LOG_TTL = _positive_int("EVENT_LOG_TTL", 24 * 3600)
# Each serving process proves it is alive this often (one UPDATE from a thread of its own);
# the runs of a process silent for RUN_STALE_AFTER seconds died with it and are failed.
RUN_HEARTBEAT_INTERVAL = _positive_float("RUN_HEARTBEAT_INTERVAL", 1.0)
RUN_STALE_AFTER = _positive_float("RUN_STALE_AFTER", 5.0)
if RUN_STALE_AFTER <= 2 * RUN_HEARTBEAT_INTERVAL:
    raise ImproperlyConfigured("RUN_STALE_AFTER must be more than twice RUN_HEARTBEAT_INTERVAL")
# Limits on what a client may send.
WS_MAX_FRAME_BYTES = _positive_int("WS_MAX_FRAME_BYTES", 64 * 1024)
CHAT_MAX_MESSAGE_CHARS = _positive_int("CHAT_MAX_MESSAGE_CHARS", 20_000)
# Messages (and answers) one user may send per minute, over all their chats.
CHAT_RATE_LIMIT_PER_MINUTE = _positive_int("CHAT_RATE_LIMIT_PER_MINUTE", 30)
# Flow control: a client that acknowledges events (it opts in with an ack right after
# `ready`) gets at most WS_ACK_WINDOW unacknowledged ones; the rest wait in the event log.
# A client that never acknowledges is closed (4408) once WS_UNACKED_LIMIT go unacknowledged,
# so a client that stopped reading cannot grow our memory without bound.
WS_ACK_WINDOW = _positive_int("WS_ACK_WINDOW", 500)
WS_UNACKED_LIMIT = _positive_int("WS_UNACKED_LIMIT", 10_000)
# --- Metrics -------------------------------------------------------------------------------
# /metrics (Prometheus) answers requests from these networks, or carrying
# "Authorization: Bearer <METRICS_TOKEN>". Behind a proxy the address is the proxy's.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")


def _networks(name: str, default: list[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    try:
        return [ipaddress.ip_network(value.strip()) for value in env.list(name, default=default) if value.strip()]
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a comma-separated list of networks (CIDR): {exc}") from None


METRICS_ALLOWED_NETWORKS = _networks("METRICS_ALLOWED_NETWORKS", ["127.0.0.0/8", "::1/128"])

# --- Accounts and the HTTP API ------------------------------------------------------------
# Open sign-up suits the embedded mode (one command, then a new user signs up and chats).
# With DATABASE_URL set (production) it is off unless asked for, so a public deployment
# does not take registrations by accident.
ACCOUNTS_SIGNUP_ENABLED = env.bool("ACCOUNTS_SIGNUP_ENABLED", default=not env.str("DATABASE_URL", default=""))


_RATE_PERIODS = ("s", "sec", "m", "min", "h", "hour", "d", "day")


def _rate(name: str, default: str) -> str:
    """A DRF throttle rate such as ``600/min``; checked here so a typo stops start-up."""
    value = env.str(name, default=default)
    count, _, period = value.partition("/")
    if not count.isdigit() or int(count) <= 0 or period not in _RATE_PERIODS:
        raise ImproperlyConfigured(f"{name} must look like 600/min (count/s|min|hour|day), got {value!r}")
    return value


REST_FRAMEWORK = {
    # Token first: it only acts on an "Authorization: Token" header, and being first makes an
    # anonymous request a 401 with WWW-Authenticate rather than a bare 403. Session auth (the
    # browser) enforces CSRF on unsafe methods.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_THROTTLE_CLASSES": ["chat.api.throttles.UserThrottle", "chat.api.throttles.AnonThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "user": _rate("API_THROTTLE_USER", "600/min"),
        "anon": _rate("API_THROTTLE_ANON", "60/min"),
        # Password guesses against the token endpoint, per client address.
        "token": _rate("API_THROTTLE_TOKEN", "10/min"),
    },
    "EXCEPTION_HANDLER": "chat.api.exceptions.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Anonymous throttles key on the client address. Behind N proxies it is the N-th entry
    # from the end of X-Forwarded-For. 0 uses REMOTE_ADDR: DRF's default (None) would trust
    # whatever X-Forwarded-For a client sends, and a fresh value would dodge every limit.
    "NUM_PROXIES": env.int("NUM_PROXIES", default=0),
}

SPECTACULAR_SETTINGS = {
    "TITLE": "agentsite API",
    "VERSION": "1",
    "DESCRIPTION": (
        "Your chats, their messages and artifacts, and exports.\n\n"
        "**Authentication.** In the browser the session cookie is used (send the `X-CSRFToken` "
        "header on POST, PATCH and DELETE). Scripts use a token: `POST /api/v1/auth/token/` with "
        "`{\"username\", \"password\"}` returns `{\"token\"}`; send it as "
        "`Authorization: Token <token>`. `DELETE /api/v1/auth/token/` revokes it. Staff can "
        "also create tokens in the admin (Auth Token → Tokens).\n\n"
        "**Errors** are always `{\"code\", \"message\"}`. Someone else's chat or artifact is "
        "a 404, exactly like a missing one."
    ),
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    # The docs pages load Swagger UI and Redoc from our own static files, never a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Swagger UI would send the schema to its public validator for a badge.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
}

# --- Attachments (chat.attachments) --------------------------------------------------------
# Files users send the model. Stored under var/attachments, or in an S3-compatible bucket
# when ATTACHMENTS_S3_BUCKET is set (credentials: the usual AWS_ACCESS_KEY_ID /
# AWS_SECRET_ACCESS_KEY, or the machine's role). Defaults follow Anthropic's documented
# limits: 32 MB a request, 100 PDF pages, images scaled to a long edge of 1568 px.
ATTACHMENTS_S3_BUCKET = env.str("ATTACHMENTS_S3_BUCKET", default="")
if ATTACHMENTS_S3_BUCKET:
    STORAGES["attachments"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": ATTACHMENTS_S3_BUCKET,
            "endpoint_url": env.str("ATTACHMENTS_S3_ENDPOINT_URL", default="") or None,
            "region_name": env.str("ATTACHMENTS_S3_REGION", default="") or None,
            "location": env.str("ATTACHMENTS_S3_PREFIX", default="attachments"),
            "default_acl": None,
            "file_overwrite": False,
            # Files are served by the site to their owner only, never by bucket URLs.
            "querystring_auth": True,
        },
    }
else:
    STORAGES["attachments"] = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": env.str("ATTACHMENTS_DIR", default=str(VAR_DIR / "attachments")), "base_url": None},
    }
# One file's size, and a message's files together (the Messages API takes 32 MB a request).
ATTACHMENT_MAX_BYTES = _positive_int("ATTACHMENT_MAX_BYTES", 32 * 1024 * 1024)
ATTACHMENT_MAX_MESSAGE_BYTES = _positive_int("ATTACHMENT_MAX_MESSAGE_BYTES", 32 * 1024 * 1024)
# Files one message may carry (and uploads a chat may hold unsent).
ATTACHMENT_MAX_PER_MESSAGE = _positive_int("ATTACHMENT_MAX_PER_MESSAGE", 20)
ATTACHMENT_MAX_PDF_PAGES = _positive_int("ATTACHMENT_MAX_PDF_PAGES", 100)
# Images are scaled down to this long edge (Anthropic's recommendation); larger ones cost
# more time to first token and no more accuracy. Pixels past the limit are refused before
# decoding (a decompression bomb: a small file that decodes to gigabytes).
ATTACHMENT_IMAGE_LONG_EDGE = _positive_int("ATTACHMENT_IMAGE_LONG_EDGE", 1568)
ATTACHMENT_MAX_IMAGE_PIXELS = _positive_int("ATTACHMENT_MAX_IMAGE_PIXELS", 8000 * 8000)
# A text file is sent as text: at most this many bytes (about 100,000 tokens).
ATTACHMENT_MAX_TEXT_BYTES = _positive_int("ATTACHMENT_MAX_TEXT_BYTES", 400_000)
# Uploads never sent with a message are deleted after this many hours (at the owner's next upload).
ATTACHMENT_UNSENT_HOURS = _positive_int("ATTACHMENT_UNSENT_HOURS", 24)

# --- Usage ledger, prices and quotas (chat.usage) --------------------------------------------
# US dollars per million tokens, per model; a model name matches its longest key that it
# starts with ("claude-sonnet-4-5-20250929" is priced as "claude-sonnet-4-5"). Cache reads
# and writes cost the input price times the model's "cache_read" / "cache_write" if it has
# them, else the USAGE_CACHE_*_MULTIPLIER below. USAGE_PRICES (JSON, the same shape) adds
# models or replaces these; a model not listed costs 0 (logged once).
# From Anthropic's pricing page (platform.claude.com/docs/en/about-claude/pricing), Dec 2026;
# the 5.5 models from a secondary source: check them before relying on them.
USAGE_DEFAULT_PRICES: dict[str, dict[str, float]] = {
    "claude-fable-5-1": {"input": 10.0, "output": 50.0, "cache_read": 0.025},
    "claude-mythos-5-1": {"input": 10.0, "output": 50.0, "cache_read": 0.025},
    "claude-fable-5": {"input": 10.0, "output": 50.0},
    "claude-mythos-5": {"input": 10.0, "output": 50.0},
    "claude-opus-5-5": {"input": 4.0, "output": 20.0, "cache_read": 0.05},
    "claude-opus-5": {"input": 5.0, "output": 25.0},
    "claude-opus-4-8": {"input": 5.0, "output": 25.0},
    "claude-opus-4-7": {"input": 5.0, "output": 25.0},
    "claude-opus-4-6": {"input": 5.0, "output": 25.0},
    "claude-opus-4-5": {"input": 5.0, "output": 25.0},
    "claude-opus-4-1": {"input": 15.0, "output": 75.0},
    "claude-opus-4": {"input": 15.0, "output": 75.0},
    "claude-sonnet-5-5": {"input": 2.0, "output": 10.0, "cache_read": 0.05},
    "claude-sonnet-5": {"input": 2.0, "output": 10.0},
    "claude-sonnet-4-6": {"input": 3.0, "output": 15.0},
    "claude-sonnet-4-5": {"input": 3.0, "output": 15.0},
    "claude-sonnet-4": {"input": 3.0, "output": 15.0},
    "claude-3-7-sonnet": {"input": 3.0, "output": 15.0},
    "claude-haiku-5-5": {"input": 0.1, "output": 0.5},
    "claude-haiku-4-5": {"input": 1.0, "output": 5.0},
    "claude-3-5-haiku": {"input": 0.8, "output": 4.0},
    "claude-3-haiku": {"input": 0.25, "output": 1.25},
    "offline-demo": {"input": 0.0, "output": 0.0},
}
_PRICE_KEYS = {"input", "output", "cache_read", "cache_write"}


def _prices() -> dict[str, dict[str, float]]:
    try:
        raw = env.json("USAGE_PRICES", default={})
    except ValueError as exc:
        raise ImproperlyConfigured(f"USAGE_PRICES is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ImproperlyConfigured('USAGE_PRICES must be a JSON object: {"model": {"input": 3, "output": 15}}')
    for model, price in raw.items():
        if (
            not isinstance(price, dict)
            or set(price) - _PRICE_KEYS
            or not {"input", "output"} <= set(price)
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in price.values())
        ):
            raise ImproperlyConfigured(
                f'USAGE_PRICES[{model!r}] must be {{"input": <dollars>, "output": <dollars>}} per million tokens'
                ' (and optionally "cache_read", "cache_write": multipliers of the input price)'
            )
    return {**USAGE_DEFAULT_PRICES, **{model: {k: float(v) for k, v in price.items()} for model, price in raw.items()}}


USAGE_PRICES = _prices()
# Cache reads and writes are priced as input tokens times these (Anthropic: 0.1 and 1.25
# for the 5-minute cache).
USAGE_CACHE_READ_MULTIPLIER = _non_negative(
    "USAGE_CACHE_READ_MULTIPLIER", env.float("USAGE_CACHE_READ_MULTIPLIER", default=0.1)
)
USAGE_CACHE_WRITE_MULTIPLIER = _non_negative(
    "USAGE_CACHE_WRITE_MULTIPLIER", env.float("USAGE_CACHE_WRITE_MULTIPLIER", default=1.25)
)


def _limit(name: str, kind: type) -> float | int | None:
    """A default quota: unset or empty means none. Off in the embedded mode (one person's
    machine), whatever is set."""
    value = env.str(name, default="")
    if not value or not env.str("DATABASE_URL", default=""):
        return None
    try:
        parsed = kind(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {value!r}") from None
    if parsed <= 0:
        raise ImproperlyConfigured(f"{name} must be more than 0 (leave it unset for no limit), got {value!r}")
    return parsed


# Default quotas per user (tokens: input + output + cache read + cache write; cost: US
# dollars), per UTC day and calendar month. Overrides per user and group are in the admin.
USAGE_QUOTA_TOKENS_PER_DAY = _limit("USAGE_QUOTA_TOKENS_PER_DAY", int)
USAGE_QUOTA_TOKENS_PER_MONTH = _limit("USAGE_QUOTA_TOKENS_PER_MONTH", int)
USAGE_QUOTA_COST_PER_DAY = _limit("USAGE_QUOTA_COST_PER_DAY", float)
USAGE_QUOTA_COST_PER_MONTH = _limit("USAGE_QUOTA_COST_PER_MONTH", float)
# Near a limit, turns of one user go one at a time: a turn may start beside the user's
# other running turns only while each of them (and it) has this share of the limit left to
# use. So concurrent turns cannot overshoot it by more than one turn.
USAGE_QUOTA_TURN_SHARE = _positive_float("USAGE_QUOTA_TURN_SHARE", 0.05)

# --- Logs --------------------------------------------------------------------------------
# "text" (readable, the default) or "json": one object per line with the request, session,
# run and user ids of what logged it (agentsite.logs).
LOG_FORMAT = env.str("LOG_FORMAT", default="text")
if LOG_FORMAT not in ("text", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be text or json, got {LOG_FORMAT!r}")
LOGGING["filters"] = {"ids": {"()": "agentsite.logs.IdsFilter"}}
LOGGING["formatters"]["json"] = {"()": "agentsite.logs.JsonFormatter"}
LOGGING["handlers"]["console"]["filters"] = ["ids"]
LOGGING["handlers"]["console"]["formatter"] = "json" if LOG_FORMAT == "json" else "plain"

# --- Search ----------------------------------------------------------------------------------
# The PostgreSQL text search configuration of the chat search (``simple``: words as written,
# no stemming, so every language works; ``english`` stems and drops stop words). The index
# is built with it by the migration and by ``manage.py rebuild_search_index``, which must be
# run after changing it: until then searches go on with the configuration installed. In the
# embedded mode (SQLite FTS5) ``english`` adds the Porter stemmer; anything else is unicode61.
SEARCH_CONFIG = env.str("SEARCH_CONFIG", default="simple")
if not SEARCH_CONFIG.replace("_", "a").isalnum() or not SEARCH_CONFIG.isascii() or SEARCH_CONFIG[0].isdigit():
    raise ImproperlyConfigured(f"SEARCH_CONFIG must be the name of a text search configuration, got {SEARCH_CONFIG!r}")
