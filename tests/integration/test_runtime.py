"""The job runtime under failure, with real parts: Celery worker processes on a Redis server of our own,
Postgres, training children on a tiny BERT. Workers are killed (-9), stopped (SIGSTOP), shut down (SIGTERM);
Redis is flushed and restarted; training runs out of memory (injected) or crashes every time. Every job ends,
none runs twice, and resumed jobs go on from their checkpoints."""

import os
import shutil
import signal
import time

import pytest
from django.db import transaction

from jobs import runtime
from jobs.models import Artifact, EvalReport, Job, JobAttempt, MetricPoint, WorkerHeartbeat
from jobs.storage import blob_iter_chunks
from tests.conftest import wait_for
from tests.integration.conftest import FINAL, job_of, until_final
from tests.integration.runtime_support import Worker, training_pids

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def beat(broker, django_db_setup, django_db_blocker, tiny_model_dir):
    """The maintenance worker running beat: the reaper every JOB_REAP_SECONDS (1 s here)."""
    worker = Worker("beat", broker, queues="reaper", beat=True)
    yield worker
    worker.kill()


@pytest.fixture
def workers(broker, beat):
    started = []

    def start(name: str = "train", **kwargs) -> Worker:
        worker = Worker(name, broker, **kwargs)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.kill()
    for home in {worker.home for worker in started}:
        for pid in training_pids("[0-9]+", under=home):  # nothing trains on after its test
            os.kill(pid, signal.SIGKILL)


def until_checkpoint(job: Job, past: int = 0, timeout: float = 120) -> Job:
    return wait_for(
        lambda: (j := job_of(job)).checkpoint_id and j.checkpoint_step > past and j,
        timeout=timeout,
        interval=0.2,
        what=f"job {job.pk} to store a checkpoint past step {past}",
    )


def attempts(job: Job) -> list[tuple]:
    return list(
        JobAttempt.objects.filter(job=job).order_by("number").values_list("number", "outcome", "resumed_from_step")
    )


def assert_resumed_and_finished(job: Job, first_outcome: str) -> Job:
    final = until_final(job)
    assert final.status == Job.Status.SUCCEEDED, (final.error_kind, final.error_message, attempts(job))
    rows = attempts(job)
    assert [r[1] for r in rows] == [first_outcome, "succeeded"], (
        rows,
        [a.message for a in JobAttempt.objects.filter(job=job)],
    )
    assert rows[1][2] > 0  # the second attempt went on from a checkpoint, not from the start
    assert EvalReport.objects.get(job=job).data["resumed_from_step"] == rows[1][2]
    assert Artifact.objects.filter(job=job, kind=Artifact.Kind.ADAPTER).count() == 1 and final.checkpoint_id is None
    # The log holds the story of each attempt whose runner lived to tell it (a killed worker's did not), in order.
    text = b"".join(blob_iter_chunks(Artifact.objects.get(job=job, kind=Artifact.Kind.LOG).blob)).decode()
    if first_outcome == "lost":
        assert "=== attempt 1 " not in text and "=== attempt 2 " in text
    else:
        assert text.index("=== attempt 1 ") < text.index("=== attempt 2 ")
    # The loss curve has each step once: nothing the first attempt drew after its checkpoint survives twice.
    steps = list(MetricPoint.objects.filter(job=job, name="loss").values_list("step", flat=True))
    assert sorted(steps) == list(range(1, final.progress_total + 1))
    assert not Job.objects.filter(status=Job.Status.RUNNING).exists()
    return final


def test_kill_9_of_the_training_child_resumes_from_the_checkpoint(workers, submit):
    workers()
    job = submit()
    until_checkpoint(job)
    (pid,) = training_pids(job.pk, 1)
    os.kill(pid, signal.SIGKILL)
    final = assert_resumed_and_finished(job, "crashed")
    assert final.failures == 1


def test_kill_9_of_the_worker_another_worker_resumes_it_and_the_orphan_dies(workers, submit):
    first = workers("first")
    job = submit()
    until_checkpoint(job)
    (orphan,) = training_pids(job.pk, 1)
    first.kill()
    wait_for(lambda: not training_pids(job.pk, 1), timeout=15, what="the orphaned training child to die")
    workers("second")
    final = assert_resumed_and_finished(job, "lost")
    assert JobAttempt.objects.get(job=job, number=2).worker.startswith("second-")
    assert final.failures == 1


def test_two_hosts_share_no_disk_and_a_dead_hosts_job_finishes_on_the_other(workers, submit, tmp_path, tiny_model_dir):
    """Workers on two machines meet only in Postgres and Redis: each its own host name and STUDIO_HOME (models,
    caches, job folders); the checkpoint the second goes on from comes from Postgres."""
    homes = {}
    for host in ("host-one", "host-two"):
        homes[host] = tmp_path / host
        shutil.copytree(tiny_model_dir, homes[host] / "models" / "tiny-bert")
    first = workers("first", host="host-one", home=homes["host-one"])
    job = submit()
    until_checkpoint(job)
    first.kill()
    wait_for(
        lambda: not training_pids(job.pk, 1, under=homes["host-one"]), timeout=15, what="the orphaned child to die"
    )
    workers("second", host="host-two", home=homes["host-two"])
    assert_resumed_and_finished(job, "lost")
    hosts = [
        w.split("@")[1].split("/")[0]
        for w in JobAttempt.objects.filter(job=job).order_by("number").values_list("worker", flat=True)
    ]
    assert hosts == ["host-one", "host-two"]
    # The first host's job folder never reached the second: it resumed from what Postgres holds.
    assert list(homes["host-one"].rglob("spec.json")) and not list(homes["host-two"].rglob(f"{job.pk}-1"))


def test_sigterm_checkpoints_then_requeues_and_the_next_worker_goes_on(workers, submit):
    first = workers("first")
    job = submit()
    until_checkpoint(job)
    assert first.stop(timeout=60) == 0  # a warm shutdown that waited for the checkpoint, then exited cleanly
    stopped = job_of(job)
    assert stopped.status == Job.Status.QUEUED and "shut down" in stopped.notice
    assert stopped.failures == 0  # a preemption is not the job's fault
    assert WorkerHeartbeat.objects.get(hostname=first.name).stopped
    workers("second")
    assert_resumed_and_finished(job, "preempted")


def test_a_worker_stopped_past_its_lease_has_none_of_its_later_writes_accepted(workers, submit):
    first = workers("first")
    job = submit(epochs=8)
    until_checkpoint(job)
    (child,) = training_pids(job.pk, 1)
    first.signal_all(signal.SIGSTOP)
    os.kill(child, signal.SIGSTOP)
    try:
        workers("second")
        taken = wait_for(lambda: (j := job_of(job)).attempt == 2 and j, timeout=60, what="the job to be taken over")
        until_checkpoint(job, past=taken.checkpoint_step)  # the new attempt has written its own checkpoint
    finally:
        os.kill(child, signal.SIGCONT)
        first.signal_all(signal.SIGCONT)
    wait_for(lambda: "lease lost" in first.log(), timeout=30, what="the first worker to notice its lost lease")
    assert not training_pids(job.pk, 1)
    assert_resumed_and_finished(job, "lost")


def test_with_a_short_visibility_timeout_and_two_workers_a_job_never_runs_twice(workers, submit):
    first = workers("first", settings_module="tests.short_visibility_settings")
    second = workers("second", settings_module="tests.short_visibility_settings")
    job = submit()
    most = 0
    while job_of(job).status not in FINAL:
        most = max(most, len(training_pids(job.pk)))
        time.sleep(0.2)
    final = job_of(job)
    assert final.status == Job.Status.SUCCEEDED and final.attempt == 1 and most == 1
    # Redis did hand the message out again while the job ran; the claim found nothing to run.
    assert "nothing to claim" in first.log() + second.log()


def test_a_flushed_broker_loses_no_job(broker, workers, submit):
    jobs = [submit(epochs=1) for _ in range(3)]
    assert broker.queue_length() >= 3
    broker.client().flushdb()
    workers()
    for job in jobs:
        assert until_final(job).status == Job.Status.SUCCEEDED  # the reaper published them again


def test_a_restarted_broker_loses_no_job(broker, workers, submit):
    workers()
    running = submit()
    until_checkpoint(running)
    broker.stop()
    waiting = submit(epochs=1)  # committed while Redis is down: its message cannot be sent
    time.sleep(2)
    broker.start()
    assert until_final(running).status == Job.Status.SUCCEEDED
    assert until_final(waiting).status == Job.Status.SUCCEEDED


def test_a_rolled_back_transaction_runs_nothing(broker, workers, submit):
    workers()
    before = broker.queue_length()
    with pytest.raises(RuntimeError), transaction.atomic():
        submit()
        raise RuntimeError("the request failed after creating the job")
    time.sleep(3)
    assert not Job.objects.exists() and broker.queue_length() == before and not training_pids("[0-9]+")


def test_a_cancelled_queued_job_never_starts(broker, workers, submit):
    job = submit(epochs=1)
    assert runtime.job_cancel(job=job).status == Job.Status.CANCELLED
    worker = workers()
    wait_for(lambda: "nothing to claim" in worker.log(), timeout=30, what="the worker to take the message")
    final = job_of(job)
    assert final.status == Job.Status.CANCELLED and final.attempt == 0 and not attempts(job)


def test_a_cancelled_running_job_stops_within_30_s_and_resumes_with_one_call(workers, submit, alice_api):
    workers()
    job = submit(epochs=8)
    until_checkpoint(job)
    asked = time.monotonic()
    assert alice_api.post(f"/api/v1/jobs/{job.pk}/cancel").status_code == 200
    cancelled = until_final(job, timeout=30)
    assert time.monotonic() - asked < 30
    assert (
        cancelled.status == Job.Status.CANCELLED
        and not Artifact.objects.filter(job=job, kind=Artifact.Kind.ADAPTER).exists()
    )
    assert wait_for(lambda: not training_pids(job.pk), timeout=10, what="the child to be gone") is not None
    assert cancelled.checkpoint_id and f"step {cancelled.checkpoint_step}" in cancelled.error_message
    resumed = alice_api.post(f"/api/v1/jobs/{job.pk}/resume")
    assert resumed.status_code == 200 and resumed.json()["status"] == "queued"
    assert resumed.json()["checkpoint_step"] == cancelled.checkpoint_step
    assert_resumed_and_finished(job, "cancelled")


def test_out_of_memory_halves_the_micro_batch_until_it_fits(workers, submit):
    workers(env={"PEFTCORE_FAULT_OOM_ABOVE": "2"})  # any forward pass on more than 2 rows runs out of memory
    job = submit(epochs=1, batch_size=8)
    final = until_final(job)
    assert final.status == Job.Status.SUCCEEDED, final.error_message
    rows = list(JobAttempt.objects.filter(job=job).order_by("number").values_list("outcome", "micro_batch_size"))
    assert rows == [("out_of_memory", None), ("out_of_memory", 4), ("succeeded", 2)]
    assert final.micro_batch_size == 2 and final.failures == 0
    assert "micro-batch of 2 and 4 gradient accumulation steps (the same effective batch of 8)" in final.notice
    report = EvalReport.objects.get(job=job).data
    assert report["micro_batch_size"] == 2 and report["params"]["batch_size"] == 8


def test_a_job_that_crashes_every_time_fails_at_the_cap(workers, submit):
    workers()
    job = submit(epochs=20)
    for attempt in (1, 2, 3):
        (pid,) = wait_for(
            lambda attempt=attempt: training_pids(job.pk, attempt), timeout=60, what=f"attempt {attempt} to start"
        )
        os.kill(pid, signal.SIGKILL)
    final = until_final(job)
    assert final.status == Job.Status.FAILED and final.failures == 3
    assert "crashed 3 time(s)" in final.error_message
    assert [r[1] for r in attempts(job)] == ["crashed", "crashed", "crashed"]
    time.sleep(3)  # it stays failed: nothing requeues it
    assert job_of(job).attempt == 3


def test_the_time_limit_stops_a_job_resumably(workers, submit):
    worker = workers()
    job = submit(epochs=40)
    # above the 4 s lease of these workers, and long enough for a first checkpoint on a loaded machine
    Job.objects.filter(pk=job.pk).update(time_limit_seconds=15)
    wait_for(lambda: (j := job_of(job)).status == Job.Status.RUNNING and j, timeout=60, what="the job to start")
    beat_row = wait_for(
        lambda: WorkerHeartbeat.objects.filter(hostname=worker.name, running_job=job).first(),
        timeout=15,
        what="the worker's heartbeat row to name its job",
    )
    assert beat_row.info["queues"] == ["training"] and beat_row.info["memory"]["total_mb"] > 0
    final = until_final(job, timeout=90)
    assert final.status == Job.Status.FAILED and final.error_kind == Job.ErrorKind.TIMEOUT
    assert final.checkpoint_id and "resume it" in final.error_message
    assert 15 <= final.run_seconds < 40
    resumed = runtime.job_resume(job=final)
    assert resumed.status == Job.Status.QUEUED and resumed.run_seconds == 0
    second = wait_for(
        lambda: JobAttempt.objects.filter(job=job, number=2).first(), timeout=60, what="the resumed attempt"
    )
    assert second.resumed_from_step == final.checkpoint_step > 0
    runtime.job_cancel(job=job_of(job))
    until_final(job, timeout=60)
