"""The embedded default's file-system broker: a worker looks for new messages often enough that a submitted job
starts within a fraction of a second (kombu's default is once a second)."""

import json
import os
import subprocess
import sys

from tests.conftest import REPO


def _broker_options(tmp_path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("CELERY_BROKER_URL", "DJANGO_SETTINGS_MODULE")}
    env.update(DJANGO_SETTINGS_MODULE="webapp.settings", STUDIO_HOME=str(tmp_path / "home"), **extra)
    code = (
        "import json; from django.conf import settings; "
        "print(json.dumps([settings.CELERY_BROKER_URL, settings.CELERY_BROKER_TRANSPORT_OPTIONS]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_file_system_broker_polls_ten_times_a_second(tmp_path):
    url, options = _broker_options(tmp_path)
    assert url == "filesystem://"
    assert options["polling_interval"] == 0.1
    assert options["data_folder_in"] == str(tmp_path / "home" / "broker")


def test_the_poll_interval_can_be_set(tmp_path):
    assert _broker_options(tmp_path, BROKER_POLLING_INTERVAL="0.5")[1]["polling_interval"] == 0.5
