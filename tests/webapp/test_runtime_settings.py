"""The runtime's settings fit together: heartbeat < lease < time limit < visibility timeout, one training
child per worker slot, late acknowledgement with prefetch 1, and a bad combination fails at start-up."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.conf import settings

from webapp.celery import app
from webapp.timing import timing_errors

REPO = Path(__file__).resolve().parents[2]
GOOD = dict(heartbeat=2, lease=120, time_limit=86400, time_limit_max=604800, visibility=608400, stop_grace=15, reap=60)


def test_the_running_settings_nest():
    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    assert settings.RUNNER_FLUSH_SECONDS * 3 <= settings.JOB_LEASE_SECONDS
    assert settings.RUNNER_FLUSH_SECONDS + settings.RUNNER_STOP_GRACE_SECONDS <= 30  # cancel within 30 s
    assert settings.JOB_LEASE_SECONDS < settings.JOB_TIME_LIMIT_SECONDS <= settings.JOB_TIME_LIMIT_MAX_SECONDS
    assert settings.JOB_TIME_LIMIT_MAX_SECONDS < visibility
    assert settings.RUNNER_STOP_GRACE_SECONDS < settings.JOB_LEASE_SECONDS
    assert settings.JOB_REAP_SECONDS <= settings.JOB_LEASE_SECONDS


def test_the_defaults_nest():
    assert timing_errors(**GOOD) == []


@pytest.mark.parametrize(
    "change, named",
    [
        ({"lease": 3}, "JOB_LEASE_SECONDS"),
        ({"time_limit": 100}, "JOB_TIME_LIMIT_SECONDS"),
        ({"time_limit": 10**6}, "JOB_TIME_LIMIT_MAX_SECONDS"),
        ({"visibility": 3600}, "CELERY_VISIBILITY_TIMEOUT"),
        ({"stop_grace": 200}, "RUNNER_STOP_GRACE_SECONDS"),
        ({"stop_grace": 29}, "must not exceed 30"),
        ({"reap": 600}, "JOB_REAP_SECONDS"),
    ],
)
def test_each_broken_rule_is_named(change, named):
    errors = timing_errors(**{**GOOD, **change})
    assert errors and named in errors[0]


def test_a_bad_combination_in_the_environment_stops_start_up_with_what_to_change():
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "webapp.settings",
        "JOB_LEASE_SECONDS": "60",
        "JOB_TIME_LIMIT_SECONDS": "30",
    }
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "JOB_TIME_LIMIT_SECONDS (30) must exceed JOB_LEASE_SECONDS (60)" in result.stderr


def test_celery_takes_one_job_per_free_slot_and_keeps_maintenance_apart():
    conf = app.conf
    assert conf.task_acks_late and conf.worker_prefetch_multiplier == 1
    assert not conf.task_reject_on_worker_lost  # a dead worker's job comes back through the reaper
    assert conf.task_default_queue == "training"
    assert {route["queue"] for route in conf.task_routes.values()} == {"maintenance", "reaper"}
    assert conf.task_routes["jobs.reap_expired_leases"]["queue"] == "reaper"
    assert conf.result_backend is None and conf.task_ignore_result
    assert conf.beat_schedule["reap-expired-leases"]["schedule"] == settings.JOB_REAP_SECONDS


def test_compose_runs_one_training_child_per_gpu_and_gives_it_time_to_checkpoint():
    services = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    worker = services["worker"]
    command = worker["command"].split()
    assert command[command.index("-Q") + 1] == "training"
    concurrency = int(command[command.index("--concurrency") + 1])
    gpus = worker["deploy"]["resources"]["reservations"]["devices"][0]["count"]
    assert concurrency == gpus == 1
    grace = worker["stop_grace_period"]
    seconds = int(grace[:-1]) * (60 if grace.endswith("m") else 1)
    assert seconds > settings.RUNNER_STOP_GRACE_SECONDS + settings.RUNNER_FLUSH_SECONDS
    beat = services["beat"]["command"].split()
    assert "--beat" in beat and beat[beat.index("-Q") + 1] == "reaper"  # nothing slow ahead of the reaper
    maintenance = services["maintenance"]["command"].split()
    assert maintenance[maintenance.index("-Q") + 1] == "maintenance"


def test_compose_offers_minio_for_the_blob_store_and_every_studio_service_can_reach_it():
    services = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    minio = services["minio"]
    assert minio["profiles"] == ["s3"]  # started only when asked for: Postgres stays the default store
    for name in ("web", "worker", "beat", "maintenance"):
        env = services[name]["environment"]
        assert env["BLOB_STORE"] == "${BLOB_STORE:-db}" and env["S3_ENDPOINT_URL"].endswith("minio:9000}")
        # The studio signs with the keys MinIO was started with.
        assert env["AWS_ACCESS_KEY_ID"] == minio["environment"]["MINIO_ROOT_USER"]
        assert env["AWS_SECRET_ACCESS_KEY"] == minio["environment"]["MINIO_ROOT_PASSWORD"]
