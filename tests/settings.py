"""Test settings: the real settings module, pointed at Postgres and Redis on 127.0.0.1 (tests never fall back
to SQLite). Each run gets its own STUDIO_HOME so models, worker caches and keys never leak between runs."""

import os
import tempfile

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("STUDIO_HOME", tempfile.mkdtemp(prefix="studio-test-"))
os.environ.setdefault("RUNNER_FLUSH_SECONDS", "0.5")
os.environ.setdefault("TRAIN_THREADS", "1")
# The bundled Gemma is converted (~90 s, 1 GB) only by the tests about it, into a cache shared between runs.
os.environ.setdefault("BUNDLED_GEMMA", "false")

from webapp.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests
# Close connections after each request: the live server's threads must not keep the test database open
# when pytest-django drops it.
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405
ALLOWED_HOSTS = [*ALLOWED_HOSTS, "testserver"]  # noqa: F405  Django test client
# The webhook tests' receivers listen on 127.0.0.1; the refusal of internal addresses is tested by turning this
# off (tests/jobs/test_notifications.py).
WEBHOOK_ALLOW_INTERNAL = True
