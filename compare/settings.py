"""All settings in one file.

Two profiles, chosen by environment only (never by code):
- embedded (default): SQLite in WAL mode, tasks in a thread pool inside the web
  process, files under var/, the provider simulator for every model without a key.
- scale-out / production: DATABASE_URL, COMPARE_TASK_BACKEND=celery (Celery workers fed
  by RabbitMQ), COMPARE_PROFILE=production.
"""

import os
import secrets
import tempfile
from datetime import timedelta
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

from compare.storage import s3_settings

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str | None = None) -> str:
    value = os.environ.get(name)
    if value is None or value == "":
        if default is None:
            raise ImproperlyConfigured(f"Environment variable {name} is required.")
        return default
    return value


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), got {raw!r}.")


def env_int(name: str, default: int, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, got {raw!r}.") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}.")
    return value


def env_float(name: str, default: float, minimum: float = 0.0) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {raw!r}.") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}.")
    return value


PROFILE = env_str("COMPARE_PROFILE", "embedded")
if PROFILE not in {"embedded", "production"}:
    raise ImproperlyConfigured("COMPARE_PROFILE must be 'embedded' or 'production'.")
PRODUCTION = PROFILE == "production"

VAR_DIR = Path(env_str("COMPARE_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _embedded_secret_key() -> str:
    # A fresh machine gets its own key, kept so that sessions survive restarts.
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


# The production profile refuses to start rather than run with a guessable key,
# an open Host header or debug pages (which would show settings and tracebacks).
if PRODUCTION:
    SECRET_KEY = os.environ.get("COMPARE_SECRET_KEY", "").strip()
    if not SECRET_KEY:
        raise ImproperlyConfigured(
            "COMPARE_SECRET_KEY is required in the production profile: set it to a long random string, e.g. "
            "the output of `python -c 'import secrets; print(secrets.token_urlsafe(50))'`."
        )
    if len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5 or SECRET_KEY.startswith("django-insecure-"):
        raise ImproperlyConfigured(
            "COMPARE_SECRET_KEY is too weak for the production profile: use at least 50 random characters, e.g. "
            "the output of `python -c 'import secrets; print(secrets.token_urlsafe(50))'`."
        )
else:
    SECRET_KEY = os.environ.get("COMPARE_SECRET_KEY") or _embedded_secret_key()
DEBUG = env_bool("COMPARE_DEBUG", False)
if PRODUCTION and DEBUG:
    raise ImproperlyConfigured("COMPARE_DEBUG must be off in the production profile: debug pages show settings.")
ALLOWED_HOSTS = [
    h.strip()
    for h in os.environ.get(
        "COMPARE_ALLOWED_HOSTS", "" if PRODUCTION else "127.0.0.1,localhost,[::1],testserver"
    ).split(",")
    if h.strip()
]
if PRODUCTION and not ALLOWED_HOSTS:
    raise ImproperlyConfigured(
        "COMPARE_ALLOWED_HOSTS is required in the production profile: the comma-separated host names "
        "this site answers to, e.g. compare.example.com."
    )
if PRODUCTION and "*" in ALLOWED_HOSTS:
    raise ImproperlyConfigured("COMPARE_ALLOWED_HOSTS may not be '*' in the production profile: name the hosts.")
CSRF_TRUSTED_ORIGINS = [o.strip() for o in os.environ.get("COMPARE_CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    # Login throttling and its audit trail (compare/lockout.py).
    "axes",
    # The scale-out profile's durable task queue (COMPARE_TASK_BACKEND below).
    "django_tasks_db",
    "compare.apps.CompareConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks: turns a refused login into the lockout page (429).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "compare.urls"
WSGI_APPLICATION = "compare.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Database: SQLite (WAL, IMMEDIATE transactions) unless DATABASE_URL is set.
if os.environ.get("DATABASE_URL"):
    import dj_database_url

    DATABASES = {"default": dj_database_url.parse(os.environ["DATABASE_URL"], conn_max_age=60)}
    # At most this many PostgreSQL connections per process, shared by its threads (a Celery
    # worker's 128 threads would otherwise open 128; compare/celery.py sets 20 for workers).
    COMPARE_DB_POOL = env_int("COMPARE_DB_POOL", 0)
    if COMPARE_DB_POOL and DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool keeps the connections instead
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {"min_size": 1, "max_size": COMPARE_DB_POOL}
else:
    DATABASES = {
        "default": {
            # Django's SQLite backend, with a process's writers taking turns (compare/sqlite/base.py).
            "ENGINE": "compare.sqlite",
            "NAME": str(VAR_DIR / "compare.sqlite3"),
            "OPTIONS": {
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
            },
            # A web thread keeps its connection between requests (opening one, with its
            # PRAGMAs, cost a request ~1.5 ms); the task pool closes its own after each task.
            "CONN_MAX_AGE": 600,
            # A file, not shared-cache memory: task threads and the live test
            # server then see the same database with real locking. One per test
            # process, so parallel runs never share it.
            "TEST": {"NAME": str(Path(tempfile.gettempdir()) / f"compare-test-{os.getpid()}.sqlite3")},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Tasks: a thread pool in the web process by default, apart from the web server's threads.
# Provider calls wait on the network for minutes, so the pool is sized for I/O, not CPU:
# hundreds of calls in flight (a thread waiting on a socket costs little; the CPU and memory
# of image work are bounded by COMPARE_PIXEL_WORKERS; the only caps on calls are the
# per-model provider limits, compare/limits.py). Scale-out: COMPARE_TASK_BACKEND=celery and
# `celery -A compare worker` processes on any number of machines (compare/celery.py, the
# CELERY_* settings below). COMPARE_TASK_BACKEND takes a dotted path or one of these names.
TASK_BACKEND_NAMES = {
    "threads": "compare.taskbackend.ThreadPoolBackend",
    "celery": "compare.celerybackend.CeleryBackend",
    "database": "django_tasks_db.DatabaseBackend",
}
TASK_BACKEND = env_str("COMPARE_TASK_BACKEND", "compare.taskbackend.ThreadPoolBackend")
TASK_BACKEND = TASK_BACKEND_NAMES.get(TASK_BACKEND, TASK_BACKEND)
TASKS = {
    "default": {
        "BACKEND": TASK_BACKEND,
        "OPTIONS": (
            {"max_workers": env_int("COMPARE_TASK_WORKERS", 512, minimum=1)}
            if TASK_BACKEND == "compare.taskbackend.ThreadPoolBackend"
            else {}
        ),
    }
}
# The Celery profile (compare/celery.py reads every CELERY_* name here). RabbitMQ gives a
# killed worker's unacknowledged messages back at once (Redis would wait for a visibility
# timeout). Late acknowledgement: a message is acknowledged when its task has ended. One
# message prefetched per thread; threads, because a generation waits on the network.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
CELERY_TASK_DEFAULT_QUEUE = env_str("COMPARE_CELERY_QUEUE", "compare")
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_POOL = env_str("CELERY_WORKER_POOL", "threads")
CELERY_WORKER_CONCURRENCY = env_int("CELERY_WORKER_CONCURRENCY", 128, minimum=1)
CELERY_TASK_IGNORE_RESULT = True  # outcomes live on the Generation rows
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False  # LOGGING below (redacted records) stays in charge
CELERY_WORKER_REDIRECT_STDOUTS = False  # or each record would be logged twice
# How long a redelivered generation waits for the workers to say whether one still runs it,
# and how often each worker sweeps for generations past their deadline (compare/celerybackend.py).
COMPARE_CELERY_INSPECT_TIMEOUT = env_float("COMPARE_CELERY_INSPECT_TIMEOUT", 1.0, minimum=0.1)
COMPARE_SWEEP_SECONDS = env_float("COMPARE_SWEEP_SECONDS", 30.0, minimum=0.1)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "new_run"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("COMPARE_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Only the production profile collects static files; the embedded one serves them
# straight from static/ (WHITENOISE_USE_FINDERS).
STATIC_ROOT = VAR_DIR / "staticfiles" if PRODUCTION else None
MEDIA_ROOT = Path(env_str("COMPARE_MEDIA_ROOT", str(VAR_DIR / "media")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
# Images on S3-compatible storage when COMPARE_S3_BUCKET is set (compare/storage.py reads
# COMPARE_S3_ENDPOINT_URL, COMPARE_S3_REGION, COMPARE_S3_PREFIX, COMPARE_S3_ADDRESSING_STYLE,
# COMPARE_S3_URL_SECONDS; boto3 reads AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY itself).
# Browsers then load images from the bucket through presigned URLs, so its origin joins img-src.
COMPARE_S3 = s3_settings(os.environ)
if COMPARE_S3 is not None:
    STORAGES["default"] = COMPARE_S3.storage
# The embedded profile serves static files without a collectstatic step.
WHITENOISE_USE_FINDERS = not PRODUCTION
WHITENOISE_AUTOREFRESH = DEBUG

# Security headers. The CSP has no 'unsafe-inline': scripts and styles come from
# our own origin or carry the per-request nonce.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF, CSP.NONCE],
    "img-src": [CSP.SELF, "data:", "blob:", *(COMPARE_S3.img_sources if COMPARE_S3 else [])],
    "connect-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "frame-ancestors": [CSP.NONE],
    "form-action": [CSP.SELF],
}
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
# htmx sends the token from the page (hx-headers on <body>); no script reads the cookie.
CSRF_COOKIE_HTTPONLY = True
if PRODUCTION:
    # Behind a TLS-terminating proxy that sets X-Forwarded-Proto (and strips it from clients).
    SECURE_SSL_REDIRECT = env_bool("COMPARE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("COMPARE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Login throttling: django-axes (compare/lockout.py). This many failed passwords for
# one username from one address lock that pair out for this many minutes. The counts
# are database rows, shared by every process; the admin lists them (and every login).
COMPARE_LOGIN_MAX_FAILURES = env_int("COMPARE_LOGIN_MAX_FAILURES", 5, minimum=1)
COMPARE_LOGIN_LOCKOUT_MINUTES = env_int("COMPARE_LOGIN_LOCKOUT_MINUTES", 15, minimum=1)
# Addresses of reverse proxies whose X-Forwarded-For names the client (e.g. 127.0.0.1).
COMPARE_TRUSTED_PROXIES = [p.strip() for p in os.environ.get("COMPARE_TRUSTED_PROXIES", "").split(",") if p.strip()]
AUTHENTICATION_BACKENDS = [
    "compare.lockout.LoginThrottleBackend",  # refuses a locked-out pair before the password is checked
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = COMPARE_LOGIN_MAX_FAILURES
AXES_COOLOFF_TIME = timedelta(minutes=COMPARE_LOGIN_LOCKOUT_MINUTES)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]  # the pair: other users and addresses are unaffected
AXES_RESET_ON_SUCCESS = True
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False  # refused attempts do not extend the lock
AXES_NEVER_LOCKOUT_GET = True  # only a POST logs in: showing the form needs no database lookup
AXES_USERNAME_CALLABLE = "compare.lockout.username_key"
AXES_LOCKOUT_CALLABLE = "compare.lockout.lockout_response"
# The client's address: X-Forwarded-For only from a peer in COMPARE_TRUSTED_PROXIES
# (compare/proxies.py). Not django-ipware's AXES_IPWARE_* settings: those pick an
# address from the headers whoever sent them, where this needs "believe the header
# only when REMOTE_ADDR is one of our proxies".
AXES_CLIENT_IP_CALLABLE = "compare.proxies.client_ip"
# The status page keeps its last model check in the cache. The default per-process
# memory cache suits one web process; several can share one: REDIS_URL (needs
# `pip install redis`).
if os.environ.get("REDIS_URL"):
    try:
        import redis  # noqa: F401  (Django's RedisCache needs it)
    except ImportError:
        raise ImproperlyConfigured(
            "REDIS_URL is set but the redis package is not installed: pip install redis."
        ) from None
    CACHES: dict[str, dict[str, object]] = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": os.environ["REDIS_URL"],
            "KEY_PREFIX": "compare",
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "OPTIONS": {"MAX_ENTRIES": 100_000},
        }
    }

# JSON API bodies carry reference images as base64 (up to 16 × 20 MB is not
# sensible; 64 MB covers a dozen large photos). Multipart uploads are files and
# are bounded per file by compare.images.MAX_UPLOAD_BYTES instead.
DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

# --- compare's own settings ---------------------------------------------------
PORT = env_int("PORT", 8000, minimum=1)
# How long `manage.py serve` waits for the rest of a request (a body announced and not
# sent) or on an idle keep-alive connection before it closes it, in seconds.
COMPARE_IDLE_TIMEOUT = env_int("COMPARE_IDLE_TIMEOUT", 30, minimum=1)
# Where the model registry lives: the repo's defaults, or a file of your own.
COMPARE_MODELS_FILE = Path(env_str("COMPARE_MODELS_FILE", str(BASE_DIR / "compare" / "models.toml")))
# The simulator answers for every model whose API key is unset. It is its own app,
# left out of INSTALLED_APPS (and of the URLs) when off, as in production.
COMPARE_SIMULATOR_ENABLED = env_bool("COMPARE_SIMULATOR", not PRODUCTION)
if COMPARE_SIMULATOR_ENABLED:
    INSTALLED_APPS.append("compare.simulator.apps.SimulatorConfig")
# `manage.py serve` runs the simulator in a process of its own on this port (by default the
# web port + 1), so simulated calls never take the web server's threads; /sim/ on the web
# port answers too. Workers on the same machine find it with no setting; workers elsewhere
# (or a web server on another port) need COMPARE_SIMULATOR_URL, e.g. http://web-host:8001/sim.
COMPARE_SIMULATOR_PORT = env_int("COMPARE_SIMULATOR_PORT", PORT + 1, minimum=1)
COMPARE_SIMULATOR_URL = env_str("COMPARE_SIMULATOR_URL", f"http://127.0.0.1:{COMPARE_SIMULATOR_PORT}/sim")
# Threads of the simulator's server: each simulated call sleeps its latency in one.
COMPARE_SIMULATOR_THREADS = env_int("COMPARE_SIMULATOR_THREADS", 512, minimum=1)
# The simulator's process gives way to the app's when both want a core (its `nice` value,
# 0-19): it stands in for a provider's machines, and drawing a burst's pictures must not slow
# the app's pages and submissions; a picture drawn later only sleeps less of its latency.
COMPARE_SIMULATOR_NICE = env_int("COMPARE_SIMULATOR_NICE", 10, minimum=0)
# The simulator keeps recently drawn pictures (their encoded bytes) up to this many MB: about
# a hundred 1K pictures. Its memory bound (400 MB with 200 4K pictures in flight) counts it.
COMPARE_SIMULATOR_CACHE_MB = env_int("COMPARE_SIMULATOR_CACHE_MB", 32, minimum=0)
# Multiplies each model's simulated latency (0 = instant; tests use 0).
COMPARE_SIMULATOR_LATENCY = env_float("COMPARE_SIMULATOR_LATENCY", 1.0)
# Per-attempt HTTP timeout and the overall deadline of one generation, in seconds.
COMPARE_REQUEST_TIMEOUT = env_float("COMPARE_REQUEST_TIMEOUT", 300.0, minimum=1.0)
COMPARE_GENERATION_DEADLINE = env_float("COMPARE_GENERATION_DEADLINE", 900.0, minimum=1.0)
COMPARE_MAX_ATTEMPTS = env_int("COMPARE_MAX_ATTEMPTS", 4, minimum=1)
# How many images one process decodes, thumbnails or renders at once (compare/images.py
# `pixel_work`): about one per core, whatever the number of calls in flight; it bounds memory.
COMPARE_PIXEL_WORKERS = env_int("COMPARE_PIXEL_WORKERS", os.cpu_count() or 1, minimum=1)
COMPARE_RETRY_BASE_DELAY = env_float("COMPARE_RETRY_BASE_DELAY", 2.0)
# Per-model provider limits (rpm, max_in_flight in the registry; compare/limits.py) hold for
# calls to real providers; set this to make calls to the built-in simulator wait for them too.
COMPARE_LIMIT_SIMULATOR = env_bool("COMPARE_LIMIT_SIMULATOR", False)
COMPARE_RUNS_PER_PAGE = 24
# An identical request within this many seconds reuses the stored result (0 = never).
COMPARE_CACHE_SECONDS = env_int("COMPARE_CACHE_SECONDS", 24 * 3600)
# The text check (compare/checks/textcheck.py): an expected string passes when its character
# error rate is at most this (0 = read exactly, after normalising whitespace, case and width).
COMPARE_TEXT_CHECK_MAX_CER = env_float("COMPARE_TEXT_CHECK_MAX_CER", 0.0)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    # Every record is redacted as it is made (compare/redact.py, installed by apps.py).
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "compare": {"level": env_str("COMPARE_LOG_LEVEL", "INFO")},
        # httpx logs full URLs at INFO; a gateway key in a query string must not reach a log.
        "httpx": {"level": "WARNING"},
        "django.tasks": {"level": "WARNING"},
    },
}
