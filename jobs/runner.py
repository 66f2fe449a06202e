"""Supervises one training run as a child process (`python -m peftcore train --spec spec.json`).

The child prints one JSON event per line. The runner turns them into batched writes (one heartbeat write
every RUNNER_FLUSH_SECONDS: metric points, progress, training time, lease renewal, cancel check), so the
database sees a handful of queries per minute however fast training steps are. Checkpoints the child writes
are stored as blobs, so any worker can resume the job. Cancel, a worker shutdown or the time limit ask the
child to checkpoint and stop (SIGTERM, then SIGKILL after a grace period); a lost lease kills it at once.
How the child ended decides what comes next: published, failed, requeued from the checkpoint (crash,
preemption, out of memory with a halved micro-batch), or given up after JOB_MAX_FAILURES.

The pieces live beside it: workspace.py (files the child needs), child_process.py (signals and output),
supervisor.py (events, heartbeats, checkpoints, stopping).
"""

import functools
import json
import logging
import os
import shutil
import signal
import socket
import threading
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings

from peftcore.errors import TrainingError
from peftcore.models import ModelRefError

from . import runtime, warm_child
from .child_process import oom_kills as read_oom_kills
from .model_folders import local_folder
from .models import Job, JobAttempt
from .services import job_logs
from .storage import blob_create_from_file, blob_delete
from .supervisor import Supervisor, lease_kept, supervise
from .workers import shutting_down
from .workspace import build_spec, zip_folder

log = logging.getLogger(__name__)


def worker_id(worker: str = "") -> str:
    """The lease owner: "<Celery node name>/<pid>" (jobs.selectors.job_running_on relies on the slash)."""
    return f"{worker or socket.gethostname()}/{os.getpid()}"


def _crash_message(returncode: int, tail: str, oom_killed: bool) -> tuple[str, str]:
    if oom_killed:
        return Job.ErrorKind.OUT_OF_MEMORY, "the system killed the training process for running out of memory"
    if returncode in (-signal.SIGKILL, 137):
        return (
            Job.ErrorKind.INTERNAL,
            "the training process was killed (SIGKILL), most often by the system for running out of memory",
        )
    last = tail.strip().splitlines()[-1] if tail.strip() else "no output"
    return Job.ErrorKind.INTERNAL, f"the training process exited with code {returncode}: {last}"


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{max(minutes, 1)} min"


def _from_step(job: Job) -> str:
    return runtime.resume_point(job.checkpoint_step, job.checkpoint_id)


def _retry_out_of_memory(job: Job, failed_micro_batch: int | None) -> str:
    batch = int(job.params.get("batch_size") or 1)
    current = failed_micro_batch or job.micro_batch_size or batch
    half = current // 2
    if half < max(1, settings.JOB_MIN_MICRO_BATCH):
        runtime.job_fail(
            job=job,
            kind=Job.ErrorKind.OUT_OF_MEMORY,
            outcome=JobAttempt.Outcome.OUT_OF_MEMORY,
            message=f"training ran out of memory even with a micro-batch of {current} row(s); try a "
            "shorter max length, a smaller base model or a method with fewer trainable "
            "parameters",
        )
        return "out of memory"
    steps = -(-batch // half)
    runtime.job_requeue(
        job=job,
        outcome=JobAttempt.Outcome.OUT_OF_MEMORY,
        micro_batch_size=half,
        message=f"ran out of memory with a micro-batch of {current}; retrying from "
        f"{_from_step(job)} with a micro-batch of {half} and {steps} gradient accumulation "
        f"steps (the same effective batch of {batch})",
    )
    return "out of memory; retrying with a smaller micro-batch"


def _finish(job: Job, supervisor: Supervisor, returncode: int, tail: str, oom_killed: bool) -> str:
    """Turn how the child ended into the job's next state; every write is fenced by the attempt."""
    state = supervisor.state
    if state.stop == "lost":
        runtime.job_attempt_lost(
            job=job, message="the lease was lost (another worker took the job over); this worker stopped its training"
        )
        return "lease lost"
    if state.stop == "cancel":
        runtime.job_fail(
            job=job,
            kind=Job.ErrorKind.CANCELLED,
            status=Job.Status.CANCELLED,
            message=f"cancelled by a user while running{runtime.resume_hint(job)}",
        )
        return "cancelled"
    if state.done:  # the adapter folder is complete once "done" is out, whatever the exit code
        with lease_kept(job):
            zip_path = zip_folder(Path(state.done["adapter_dir"]), supervisor.workdir / "adapter.zip")
            with open(zip_path, "rb") as fh:
                blob = blob_create_from_file(fh)
        filename = f"job-{job.pk}-{job.method}-adapter.zip"
        try:
            published = runtime.job_succeed(
                job=job,
                metrics=state.done.get("metrics", {}),
                report=state.done.get("report", {}),
                adapter_blob=blob,
                filename=filename,
            )
        except Exception:
            blob_delete(blob)  # nothing points at it; the runner error below fails the attempt
            raise
        if not published:
            blob_delete(blob)
            return "lease lost before publishing"
        return "succeeded"
    if state.stop == "timeout":
        runtime.job_fail(
            job=job,
            kind=Job.ErrorKind.TIMEOUT,
            outcome=JobAttempt.Outcome.TIMEOUT,
            message=f"stopped at its time limit of {_duration(supervisor.limit)} of training; resume "
            f"it to go on from {_from_step(job)} for another {_duration(supervisor.limit)}",
        )
        return "timed out"
    if state.stop == "preempt" or state.preempted:
        runtime.job_requeue(
            job=job,
            outcome=JobAttempt.Outcome.PREEMPTED,
            message=f"its worker shut down; queued again to resume from {_from_step(job)}",
        )
        return "preempted"
    if state.error:
        if state.error.get("kind") == Job.ErrorKind.OUT_OF_MEMORY:
            return _retry_out_of_memory(job, state.error.get("micro_batch_size"))
        runtime.job_fail(
            job=job,
            kind=state.error.get("kind", Job.ErrorKind.INTERNAL),
            message=state.error.get("message", "training failed"),
        )
        return "failed"
    kind, message = _crash_message(returncode, tail, oom_killed)
    if kind == Job.ErrorKind.OUT_OF_MEMORY:
        return _retry_out_of_memory(job, None)
    failures = job.failures + 1
    if failures < settings.JOB_MAX_FAILURES:
        runtime.job_requeue(
            job=job,
            outcome=JobAttempt.Outcome.CRASHED,
            failed=True,
            message=f"{message}; queued again to resume from {_from_step(job)} "
            f"(crash {failures} of at most {settings.JOB_MAX_FAILURES})",
        )
        return "crashed; requeued"
    runtime.job_fail(
        job=job,
        kind=kind,
        outcome=JobAttempt.Outcome.CRASHED,
        failed=True,
        message=f"{message}. It crashed {failures} time(s), the most allowed; giving up",
    )
    return "crashed"


@contextmanager
def _sigterm_noted():
    """A SIGTERM sent straight to this process (a service manager stopping every process) asks for the
    same as a warm shutdown: checkpoint and give the job back. Only the main thread can take signals."""
    terminated = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield terminated
        return

    def noted(signum, frame):
        terminated.set()
        if callable(previous):  # the solo pool runs tasks in Celery's main process: its warm shutdown too
            previous(signum, frame)

    previous = signal.signal(signal.SIGTERM, noted)
    try:
        yield terminated
    finally:
        signal.signal(signal.SIGTERM, previous)


NOTHING = "nothing to claim"
# Outcomes after which the worker should not claim more work in the same task: it is stopping, or lost its lease.
GIVEN_BACK = {"preempted", "lease lost", "lease lost before publishing", "runner error"}


def run(job_id: int | None = None, *, worker: str = "") -> str:
    """Claim the job whose turn it is, train, publish. Returns what happened, for the worker's log.
    `job_id` names the job whose message arrived; any queued job may be the one claimed (fair share)."""
    job = runtime.job_claim_next(owner=worker_id(worker), has_gpu=has_gpu())
    if job is None:
        return NOTHING
    _prepare_warm_child()  # its imports overlap with fetching the data and the model below
    workdir = settings.WORKER_DIR / "jobs" / f"{job.pk}-{job.attempt}"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    try:
        with lease_kept(job):
            try:
                model_path = local_folder(job.base_model)
            except ModelRefError as exc:
                runtime.job_fail(job=job, kind=Job.ErrorKind.MODEL_LOAD, message=str(exc))
                return "model not found"
            try:
                spec = build_spec(job, workdir, model_path)
            except TrainingError as exc:  # what the job needs is gone (a combination's parent deleted)
                runtime.job_fail(job=job, kind=exc.kind, message=exc.message)
                return "cannot start"
            spec_path = workdir / "spec.json"
            spec_path.write_text(json.dumps(spec, indent=1))
        before = runtime.job_heartbeat(job=job)  # a cancel while fetching data or the model: do not start
        if before == "lost":
            runtime.job_attempt_lost(job=job, message="the lease was lost before training started")
            return "lease lost"
        if before == "cancel":
            runtime.job_fail(
                job=job,
                kind=Job.ErrorKind.CANCELLED,
                status=Job.Status.CANCELLED,
                message=f"cancelled by a user before training started{runtime.resume_hint(job)}",
            )
            return "cancelled"
        kills_before = read_oom_kills()
        with _sigterm_noted() as terminated:
            supervisor, returncode, tail = supervise(job, spec_path, workdir, terminated)
        _keep_log(job, supervisor, workdir, worker)
        oom_killed = (
            kills_before is not None and (read_oom_kills() or 0) > kills_before and returncode == -signal.SIGKILL
        )
        return _finish(job, supervisor, returncode, tail, oom_killed)
    except Exception as exc:
        log.exception("job %s: runner error", job.pk)
        runtime.job_fail(job=job, kind=Job.ErrorKind.INTERNAL, message=f"{type(exc).__name__}: {exc}")
        return "runner error"
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if shutting_down():
            warm_child.discard()
        else:
            _prepare_warm_child()  # for the next job


def _prepare_warm_child() -> None:
    """Only an optimisation: a child that cannot be started now is started at its job, which reports why."""
    try:
        warm_child.prepare()
    except Exception:
        log.warning("could not start a warm training child", exc_info=True)


def _keep_log(job: Job, supervisor: Supervisor, workdir: Path, worker: str) -> None:
    """The attempt's log goes with the job; a failure to store it never changes how the job ends, and the lease
    is kept while it is stored."""
    try:
        text = job_logs.attempt_text(
            job=job, worker=worker_id(worker), lines=supervisor.state.log, stderr_path=workdir / "train.log"
        )
        with lease_kept(job):
            job_logs.job_log_append(job=job, text=text)
    except Exception:
        log.warning("job %s: could not store its log", job.pk, exc_info=True)


@functools.cache
def has_gpu() -> bool:
    """Whether this worker has an NVIDIA GPU (nvidia-smi; the worker's main process imports no torch)."""
    from .workers import gpus

    return bool(gpus())
