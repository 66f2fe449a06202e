"""The runner in this process, with a real training child: its failure paths end in a classified state."""

import signal

import pytest

from jobs import runner
from jobs.models import Job
from jobs.supervisor import Supervisor
from tests.factories import dataset_from, job_for


@pytest.fixture
def make_job(alice, tiny_model, tiny_model_dir, tmp_path):
    def make(train_text: str, eval_text: str | None = None, **overrides):
        def dataset(name, text):
            path = tmp_path / f"{name}.csv"
            path.write_text(text)
            return dataset_from(alice, path, name=name)

        if eval_text:
            overrides = {"eval_dataset": dataset("eval", eval_text), **overrides}
        return job_for(
            alice, dataset("train", train_text), tiny_model, text_column="text", params={"epochs": 1}, **overrides
        )

    return make


TRAIN = "text,label\n" + "".join(f"good film {i},pos\nbad film {i},neg\n" for i in range(8))


def test_an_unknown_eval_label_fails_as_bad_data_naming_the_row(make_job):
    job = make_job(TRAIN, "text,label\nfine,pos\nodd one,maybe\n")
    assert runner.run(job.pk) == "failed"
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED and job.error_kind == "bad_data"
    assert "row 3" in job.error_message and "maybe" in job.error_message
    assert job.finished_at is not None and not job.artifacts.filter(kind="adapter").exists()
    assert job.artifacts.get(kind="log").size_bytes > 0  # what happened stays readable


def test_a_missing_model_folder_fails_as_model_load(make_job):
    from jobs.services import base_model_register

    missing = base_model_register(name="gone", source="local:not-there")
    job = make_job(TRAIN, base_model=missing)
    assert runner.run(job.pk) == "model not found"
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED and job.error_kind == "model_load"


def test_a_job_is_run_once_even_if_delivered_twice(make_job):
    job = make_job(TRAIN)
    assert runner.run(job.pk) == "succeeded"
    assert runner.run(job.pk) == "nothing to claim"
    job.refresh_from_db()
    assert job.attempt == 1 and job.artifacts.filter(kind="adapter").count() == 1


def test_a_crash_is_described_and_only_a_counted_oom_kill_is_called_out_of_memory():
    kind, message = runner._crash_message(-signal.SIGKILL, "", oom_killed=True)
    assert kind == "out_of_memory" and "memory" in message
    kind, message = runner._crash_message(-signal.SIGKILL, "", oom_killed=False)
    assert kind == "internal" and "SIGKILL" in message
    kind, message = runner._crash_message(1, "Traceback ...\nRuntimeError: boom\n", oom_killed=False)
    assert kind == "internal" and "boom" in message


def test_the_watchdog_kills_training_once_the_lease_has_not_been_renewed(settings):
    """The main thread may hang in a database call; the watchdog alone must stop the child in time."""
    import subprocess
    import threading
    import time

    settings.RUNNER_FLUSH_SECONDS, settings.JOB_LEASE_SECONDS = 0.2, 2
    proc = subprocess.Popen(["sleep", "60"], start_new_session=True, stdout=subprocess.PIPE, text=True)
    supervisor = Supervisor(Job(pk=1, run_seconds=0), proc, None, threading.Event())
    done = threading.Event()
    started = time.monotonic()
    supervisor.watchdog(done)  # returns once it has killed the child
    assert supervisor.expired.is_set() and proc.wait(timeout=5) == -signal.SIGKILL
    assert 2 - 2 * 0.2 <= time.monotonic() - started < 3  # two heartbeats before the lease would run out
