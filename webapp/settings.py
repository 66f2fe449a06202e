"""Settings come from the environment (environs fails loudly on bad values).

With nothing set the studio is the embedded default: SQLite and a file-system Celery broker under
STUDIO_HOME, so one machine runs it with no servers. DATABASE_URL and CELERY_BROKER_URL switch it to
Postgres and Redis (docker-compose.yml, tests and CI).
"""

import secrets
from datetime import timedelta
from pathlib import Path

import dj_email_url  # installed with environs[django]
from csp import constants as csp_constants
from environs import Env
from marshmallow.validate import OneOf, Range

env = Env()

BASE_DIR = Path(__file__).resolve().parent.parent
STUDIO_HOME = env.path("STUDIO_HOME", BASE_DIR / ".studio").resolve()
STUDIO_HOME.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    # A key generated once per installation beats a hard-coded default that every install shares.
    path = STUDIO_HOME / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = env.str("SECRET_KEY", "") or _secret_key()
DEBUG = env.bool("DEBUG", False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "ninja",
    "axes",  # login rate limiting (see Security below)
    "webapp",
    "teams",
    "jobs",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "webapp.middleware.ActorMiddleware",  # request.actor, after request.user
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",  # the Content-Security-Policy header (below)
    "axes.middleware.AxesMiddleware",  # last, as axes asks: turns a locked-out login into its page
]

ROOT_URLCONF = "webapp.urls"
WSGI_APPLICATION = "webapp.wsgi.application"

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

DATABASES = {"default": env.dj_db_url("DATABASE_URL", f"sqlite:///{STUDIO_HOME / 'studio.sqlite3'}", conn_max_age=60)}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Web, worker and runner write concurrently: WAL + IMMEDIATE transactions + a busy timeout keep
    # SQLite from failing with "database is locked" in the embedded default.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
else:
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # A dead network must fail a query in seconds, not hang it for the kernel's TCP timeout: a runner stuck
    # in a query could not notice its lease is gone (its watchdog still kills the training, see jobs.runner).
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "connect_timeout": 10,
            "keepalives": 1,
            "keepalives_idle": 30,
            "keepalives_interval": 10,
            "keepalives_count": 3,
        }
    )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "job-list"
LOGOUT_REDIRECT_URL = "login"

# --- Security (docs/architecture.md#security) ---
# The embedded default serves plain http on 127.0.0.1, so nothing below requires TLS unless SECURE=true: set it
# when a TLS proxy is in front. The proxy must set (not pass through) the SECURE_PROXY_SSL_HEADER header.
SECURE = env.bool("SECURE", False)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = SECURE
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = CSRF_COOKIE_SAMESITE = "Lax"
SECURE_SSL_REDIRECT = SECURE
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # the container health check asks over plain http
_proxy_ssl_header = env.str("SECURE_PROXY_SSL_HEADER", "X-Forwarded-Proto" if SECURE else "")
if _proxy_ssl_header:
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _proxy_ssl_header.upper().replace("-", "_"), "https")
# HSTS: a year, subdomains and the preload flag by default under SECURE (what `check --deploy` asks for); a
# domain with plain-http subdomains turns SECURE_HSTS_INCLUDE_SUBDOMAINS off.
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", 365 * 24 * 3600 if SECURE else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", SECURE)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", SECURE)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy (django-csp): scripts, styles and everything else from the studio's own origin only; no
# inline script or style attribute, no eval (htmx runs with allowEval off), no plugins, no framing, forms post
# only here. Page behaviour lives in webapp/static/webapp/studio.js; a browser test visits every page and fails
# on any violation (tests/browser/test_csp.py).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [csp_constants.SELF],
        "script-src": [csp_constants.SELF],
        "style-src": [csp_constants.SELF],
        "img-src": [csp_constants.SELF, "data:"],
        "connect-src": [csp_constants.SELF],
        "object-src": [csp_constants.NONE],
        "base-uri": [csp_constants.NONE],
        "frame-ancestors": [csp_constants.NONE],
        "form-action": [csp_constants.SELF],
    }
}

# Login rate limiting (django-axes): LOGIN_FAILURE_LIMIT wrong passwords lock that username from that address
# for LOGIN_COOLOFF_MINUTES after the last failure. Locking the pair, not the username, keeps an attacker from
# locking everyone out; bearer-token API calls never authenticate by password and are not counted.
# The axes backend needs the request: in tests use force_login, or client.login(request=HttpRequest(), ...).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "webapp.login_views.AddressLimitBackend",  # the per-address limit below, on every password login
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("LOGIN_COOLOFF_MINUTES", 15.0))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
# And any username from an address with this many failures (summed over usernames) within the cool-off: one
# password sprayed over many usernames (webapp/login_views.py). High enough for an office behind one address.
LOGIN_ADDRESS_FAILURE_LIMIT = env.int("LOGIN_ADDRESS_FAILURE_LIMIT", 30, validate=Range(min=1))
# A password-reset link works once and for this long.
PASSWORD_RESET_TIMEOUT = env.int("PASSWORD_RESET_TIMEOUT_SECONDS", 3 * 3600)
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked.html"
# Proxies in front whose X-Forwarded-For entries are trusted for the client's address (webapp/client_ip.py).
TRUSTED_PROXIES = env.int("TRUSTED_PROXIES", 0, validate=lambda n: n >= 0)
AXES_CLIENT_IP_CALLABLE = "webapp.client_ip.client_ip"
# --- end of Security ---

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", STUDIO_HOME / "static")
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# Serve straight from the app folders: the embedded default needs no collectstatic step.
WHITENOISE_USE_FINDERS = True

# Uploads are streamed to a temporary file, never held in memory, and cut off at MAX_UPLOAD_BYTES.
FILE_UPLOAD_HANDLERS = [
    "webapp.upload_handlers.SizeLimitUploadHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
MAX_UPLOAD_BYTES = env.int("MAX_UPLOAD_BYTES", 1024 * 1024 * 1024)
# Where blobs (datasets, adapters, checkpoints, merged models) keep their bytes: "db" (Postgres, the embedded
# default) or "s3" (an S3-compatible object store: AWS S3, MinIO, ...; jobs/object_store.py). Credentials come
# from the environment as boto3 reads them (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY).
BLOB_STORE = env.str("BLOB_STORE", "db", validate=OneOf(["db", "s3"]))
S3_BUCKET = env.str("S3_BUCKET", "studio")
S3_ENDPOINT_URL = env.str("S3_ENDPOINT_URL", "")  # e.g. http://minio:9000; empty: AWS
S3_REGION = env.str("S3_REGION", "")
S3_PREFIX = env.str("S3_PREFIX", "")  # e.g. "studio/" to share a bucket
# A file up to this size is checked row by row inside the request (errors come back at once, nothing is stored);
# a larger one is stored as it is and checked by the maintenance worker, so the request returns once the bytes
# are stored and the web process's memory stays flat.
UPLOAD_CHECK_INLINE_BYTES = env.int("UPLOAD_CHECK_INLINE_BYTES", 16 * 1024 * 1024)
# Large uploads are streamed into this folder (its own, so the storage sweep may clear what a killed web server
# left there); on several hosts, each web host sweeps its own at start (webapp.apps).
FILE_UPLOAD_TEMP_DIR = str(env.path("FILE_UPLOAD_TEMP_DIR", STUDIO_HOME / "uploads"))
Path(FILE_UPLOAD_TEMP_DIR).mkdir(parents=True, exist_ok=True)
DATA_UPLOAD_MAX_NUMBER_FILES = 1

# Celery: Postgres is the source of truth, the broker only says "job N is ready", no result backend.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = STUDIO_HOME / "broker"
    (_broker_dir / "processed").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir),
        "data_folder_out": str(_broker_dir),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        # kombu polls the folder once a second by default, so a job waited 0.5 s on average (up to 1 s) before a
        # worker saw it; a folder listing every 0.1 s costs nothing measurable.
        "polling_interval": env.float("BROKER_POLLING_INTERVAL", 0.1),
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
# A worker takes the next message only when its slot is free (late ack, prefetch 1): a job never waits behind
# a busy worker while another is idle. A message only says "a job is ready": a redelivered one claims the front
# of the queue, or nothing (jobs.runtime).
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = False  # a dead worker's job comes back through the lease reaper
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "training"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Maintenance runs on its own queue, so it never waits behind an hours-long training task; the reaper on one of
# its own, so it never waits behind a token count or a playground run either.
CELERY_TASK_ROUTES = {
    "jobs.reap_expired_leases": {"queue": "reaper"},
    "jobs.profile_base_model": {"queue": "maintenance"},
    "jobs.prepare_base_model": {"queue": "maintenance"},
    "jobs.export_merged": {"queue": "maintenance"},
    "jobs.count_trainable": {"queue": "maintenance"},
    "jobs.count_tokens": {"queue": "maintenance"},
    "jobs.playground_predict": {"queue": "maintenance"},
    "jobs.send_notifications": {"queue": "maintenance"},
    "jobs.sweep_storage": {"queue": "maintenance"},
    "jobs.check_dataset": {"queue": "maintenance"},
}
# A live trainable count not answered within this many seconds is asked for again (its message was lost).
COUNT_RETRY_SECONDS = 30
# Token counts read a whole dataset (minutes for a large one) and playground runs load a model: ask again later.
TOKEN_COUNT_RETRY_SECONDS = 600
PLAYGROUND_RETRY_SECONDS = 300

# The job runtime (docs/architecture.md). Timings must nest: heartbeat < lease < time limit < visibility
# timeout (webapp.timing checks it here, at start-up).
# Seconds between the runner's batched writes (progress, metrics, lease renewal, cancel check).
RUNNER_FLUSH_SECONDS = env.float("RUNNER_FLUSH_SECONDS", 2.0)
JOB_LEASE_SECONDS = env.int("JOB_LEASE_SECONDS", 120)
# How often beat runs the reaper (expired leases, lost messages).
JOB_REAP_SECONDS = env.float("JOB_REAP_SECONDS", 60.0)
# A job whose attempts end without a verdict (worker lost, training process crashed) this many times fails.
JOB_MAX_FAILURES = env.int("JOB_MAX_FAILURES", 3)
# A job still queued this long after its message was sent is published again (a duplicate claims nothing).
JOB_REPUBLISH_SECONDS = env.int("JOB_REPUBLISH_SECONDS", 1800)
# Training time a job may use before it stops as timed out (resumable); a job may ask for less, never more.
JOB_TIME_LIMIT_SECONDS = env.int("JOB_TIME_LIMIT_SECONDS", 24 * 3600)
JOB_TIME_LIMIT_MAX_SECONDS = env.int("JOB_TIME_LIMIT_MAX_SECONDS", 7 * 24 * 3600)
# Checkpoints go to the database this often (whichever comes first; 0 turns the step count off).
CHECKPOINT_EVERY_SECONDS = env.float("CHECKPOINT_EVERY_SECONDS", 600.0)
CHECKPOINT_EVERY_STEPS = env.int("CHECKPOINT_EVERY_STEPS", 0)
# How long a training process asked to stop may take to write its checkpoint before it is killed.
RUNNER_STOP_GRACE_SECONDS = env.float("RUNNER_STOP_GRACE_SECONDS", 15.0)
# Out-of-memory retries halve the micro-batch down to this many rows.
JOB_MIN_MICRO_BATCH = env.int("JOB_MIN_MICRO_BATCH", 1)
WORKER_HEARTBEAT_SECONDS = env.float("WORKER_HEARTBEAT_SECONDS", 15.0)
# An idle training worker asks for queued work at its heartbeat once a job has waited this long (its message may
# be lost: jobs/idle_workers.py).
JOB_IDLE_NUDGE_SECONDS = env.float("JOB_IDLE_NUDGE_SECONDS", 10.0)
# A runner that ends a job claims the next queued one in the same task (off only where a worker must take nothing
# but what its messages name, such as the test suite's shared worker).
JOB_CLAIM_NEXT = env.bool("JOB_CLAIM_NEXT", True)
# The storage sweep (jobs.services.storage_sweep) runs this often and removes blobs nothing points at, and
# temporary upload files, once they are older than the grace period (far longer than any write in flight).
STORAGE_SWEEP_SECONDS = env.float("STORAGE_SWEEP_SECONDS", 3600.0, validate=Range(min=1))
STORAGE_SWEEP_GRACE_SECONDS = env.float("STORAGE_SWEEP_GRACE_SECONDS", 6 * 3600.0, validate=Range(min=60))
# Job notifications (jobs.notifications): beat sweeps for jobs that ended and webhook deliveries that are due this
# often (a worker also asks for a sweep as soon as its job ends). A webhook is posted with this timeout and tried
# this many times (30 s, 2 min, 10 min, 1 h apart) before it is marked failed on the team dashboard.
NOTIFY_SWEEP_SECONDS = env.float("NOTIFY_SWEEP_SECONDS", 30.0, validate=Range(min=1))
WEBHOOK_TIMEOUT_SECONDS = env.float("WEBHOOK_TIMEOUT_SECONDS", 10.0, validate=Range(min=1))
WEBHOOK_MAX_ATTEMPTS = env.int("WEBHOOK_MAX_ATTEMPTS", 5, validate=Range(min=1))
# Webhooks to loopback, private, link-local or reserved addresses are refused (a team admin must not reach the
# studio's own network); an operator whose receivers are internal turns this on.
WEBHOOK_ALLOW_INTERNAL = env.bool("WEBHOOK_ALLOW_INTERNAL", False)
# Links in emails and webhook payloads point here.
STUDIO_BASE_URL = env.str("STUDIO_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
# Mail (job notifications, invitations): EMAIL_URL (dj-email-url) such as submission://user:password@smtp.example.com:587 (STARTTLS),
# smtp://user:password@host:465?ssl=True or smtp://host:25; unset, the embedded default prints mails to the console.
_email = dj_email_url.parse(env.str("EMAIL_URL", "") or "console://")
if "EMAIL_BACKEND" not in _email:  # dj-email-url ignores a scheme it does not know; say so instead
    raise ValueError(
        "EMAIL_URL: unknown scheme; use smtp:// (add ?ssl=True for SSL), submission:// (STARTTLS), "
        "console://, file:// or dummy://"
    )
EMAIL_BACKEND = _email["EMAIL_BACKEND"]
EMAIL_HOST = _email["EMAIL_HOST"] or "localhost"
EMAIL_PORT = _email["EMAIL_PORT"] or 25
EMAIL_HOST_USER = _email["EMAIL_HOST_USER"] or ""
EMAIL_HOST_PASSWORD = _email["EMAIL_HOST_PASSWORD"] or ""
EMAIL_USE_TLS, EMAIL_USE_SSL = _email["EMAIL_USE_TLS"], _email["EMAIL_USE_SSL"]
EMAIL_FILE_PATH = _email["EMAIL_FILE_PATH"] or None
# A mail server that hangs must not hold the notification sweep (webhooks go on regardless).
EMAIL_TIMEOUT = _email["EMAIL_TIMEOUT"] or 10
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", "studio@localhost")
# Redis redelivers an unacknowledged message after this long; it must outlast the longest job, or a running
# job's message comes back (harmless, a claim finds nothing, but wasted).
_visibility = env.int("CELERY_VISIBILITY_TIMEOUT", JOB_TIME_LIMIT_MAX_SECONDS + 3600)
if CELERY_BROKER_URL.startswith("redis"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": _visibility}
CELERY_BEAT_SCHEDULE = {
    "reap-expired-leases": {
        "task": "jobs.reap_expired_leases",
        "schedule": JOB_REAP_SECONDS,
        "options": {"expires": JOB_REAP_SECONDS * 0.9},
    },
    "sweep-storage": {
        "task": "jobs.sweep_storage",
        "schedule": STORAGE_SWEEP_SECONDS,
        "options": {"expires": STORAGE_SWEEP_SECONDS * 0.9},
    },
    "send-notifications": {
        "task": "jobs.send_notifications",
        "schedule": NOTIFY_SWEEP_SECONDS,
        "options": {"expires": NOTIFY_SWEEP_SECONDS * 0.9},
    },
}

from webapp.timing import check_timings  # noqa: E402

check_timings(
    heartbeat=RUNNER_FLUSH_SECONDS,
    lease=JOB_LEASE_SECONDS,
    time_limit=JOB_TIME_LIMIT_SECONDS,
    time_limit_max=JOB_TIME_LIMIT_MAX_SECONDS,
    visibility=_visibility,
    stop_grace=RUNNER_STOP_GRACE_SECONDS,
    reap=JOB_REAP_SECONDS,
)

# Models: local folders live under MODEL_ROOT and never escape it.
MODEL_ROOT = env.path("MODEL_ROOT", STUDIO_HOME / "models").resolve()
# Offer the bundled Gemma 3 270M when its package is installed (converted once into MODEL_ROOT/bundled/, ~1 GB).
BUNDLED_GEMMA = env.bool("BUNDLED_GEMMA", True)
# Where a worker materialises datasets, base models and training outputs.
WORKER_DIR = env.path("WORKER_DIR", STUDIO_HOME / "worker").resolve()
# The worker's cache of dataset files (fetched from the database once each) keeps to this size, least recently
# used evicted first (jobs/workspace.py).
WORKER_DATASET_CACHE_BYTES = env.int("WORKER_DATASET_CACHE_BYTES", 20 * 1024**3, validate=Range(min=0))
# CPU threads for one training child; None lets torch decide.
TRAIN_THREADS = env.int("TRAIN_THREADS", None)
# Processes one job trains on (peftcore/distributed.py): on a worker with several GPUs, one per GPU (its
# CUDA_VISIBLE_DEVICES decides which); 1 trains in the training child alone.
TRAIN_PROCESSES = env.int("TRAIN_PROCESSES", 1)
# Python used for the training child (the worker's own by default).
TRAIN_PYTHON = env.str("TRAIN_PYTHON", "")
# Keep the next training child started, its libraries imported, waiting for its job (jobs/warm_child.py).
TRAIN_WARM_CHILD = env.bool("TRAIN_WARM_CHILD", True)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
