"""Settings come from the environment (environs fails loudly on bad values).

With nothing set the studio is the embedded default: SQLite and a file-system Celery broker under
STUDIO_HOME, so one machine runs it with no servers. DATABASE_URL and CELERY_BROKER_URL switch it to
Postgres and Redis (docker-compose.yml, tests and CI).
"""

import secrets
from pathlib import Path

from environs import Env

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
    "webapp",
    "jobs",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
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

DATABASES = {
    "default": env.dj_db_url("DATABASE_URL", f"sqlite:///{STUDIO_HOME / 'studio.sqlite3'}", conn_max_age=60)
}
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
        {"connect_timeout": 10, "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10,
         "keepalives_count": 3})

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "job-list"
LOGOUT_REDIRECT_URL = "login"

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
    "jobs.count_trainable": {"queue": "maintenance"},
    "jobs.count_tokens": {"queue": "maintenance"},
    "jobs.playground_predict": {"queue": "maintenance"},
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
# Redis redelivers an unacknowledged message after this long; it must outlast the longest job, or a running
# job's message comes back (harmless, a claim finds nothing, but wasted).
_visibility = env.int("CELERY_VISIBILITY_TIMEOUT", JOB_TIME_LIMIT_MAX_SECONDS + 3600)
if CELERY_BROKER_URL.startswith("redis"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": _visibility}
CELERY_BEAT_SCHEDULE = {
    "reap-expired-leases": {"task": "jobs.reap_expired_leases", "schedule": JOB_REAP_SECONDS,
                            "options": {"expires": JOB_REAP_SECONDS * 0.9}},
}

from webapp.timing import check_timings  # noqa: E402

check_timings(heartbeat=RUNNER_FLUSH_SECONDS, lease=JOB_LEASE_SECONDS, time_limit=JOB_TIME_LIMIT_SECONDS,
              time_limit_max=JOB_TIME_LIMIT_MAX_SECONDS, visibility=_visibility,
              stop_grace=RUNNER_STOP_GRACE_SECONDS, reap=JOB_REAP_SECONDS)

# Models: local folders live under MODEL_ROOT and never escape it.
MODEL_ROOT = env.path("MODEL_ROOT", STUDIO_HOME / "models").resolve()
# Where a worker materialises datasets, base models and training outputs.
WORKER_DIR = env.path("WORKER_DIR", STUDIO_HOME / "worker").resolve()
# CPU threads for one training child; None lets torch decide.
TRAIN_THREADS = env.int("TRAIN_THREADS", None)
# Python used for the training child (the worker's own by default).
TRAIN_PYTHON = env.str("TRAIN_PYTHON", "")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
