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
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "training"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Maintenance runs on its own queue, so it never waits behind an hours-long training task.
CELERY_TASK_ROUTES = {
    "jobs.reap_expired_leases": {"queue": "maintenance"},
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
CELERY_BEAT_SCHEDULE = {
    "reap-expired-leases": {"task": "jobs.reap_expired_leases", "schedule": 60.0, "options": {"expires": 55}},
}

# Models: local folders live under MODEL_ROOT and never escape it.
MODEL_ROOT = env.path("MODEL_ROOT", STUDIO_HOME / "models").resolve()
# Where a worker materialises datasets, base models and training outputs.
WORKER_DIR = env.path("WORKER_DIR", STUDIO_HOME / "worker").resolve()
# Seconds between the runner's batched writes (progress, metrics, lease renewal, cancel check).
RUNNER_FLUSH_SECONDS = env.float("RUNNER_FLUSH_SECONDS", 2.0)
JOB_LEASE_SECONDS = env.int("JOB_LEASE_SECONDS", 120)
# A job whose worker died is retried up to this many attempts in all.
JOB_MAX_ATTEMPTS = env.int("JOB_MAX_ATTEMPTS", 3)
# A job still queued this long after its message was sent is published again (a duplicate claims nothing).
JOB_REPUBLISH_SECONDS = env.int("JOB_REPUBLISH_SECONDS", 1800)
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
