"""Supervises one training run as a child process (`python -m peftcore train --spec spec.json`).

The child prints one JSON event per line. The runner turns them into batched writes (one heartbeat write
every RUNNER_FLUSH_SECONDS: metric points, progress, training time, lease renewal, cancel check), so the
database sees a handful of queries per minute however fast training steps are. Checkpoints the child writes
are stored as blobs, so any worker can resume the job. Cancel, a worker shutdown or the time limit ask the
child to checkpoint and stop (SIGTERM, then SIGKILL after a grace period); a lost lease kills it at once.
How the child ended decides what comes next: published, failed, requeued from the checkpoint (crash,
preemption, out of memory with a halved micro-batch), or given up after JOB_MAX_FAILURES.
"""

import json
import logging
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection

from peftcore.models import ModelRefError, resolve_model

from . import runtime
from .models import Artifact, Blob, Dataset, Job, JobAttempt
from .storage import blob_create_from_file, blob_delete, blob_write_to_path, unzip_safely
from .workers import shutting_down

log = logging.getLogger(__name__)

STDERR_TAIL_BYTES = 3000


@dataclass
class RunState:
    total: int | None = None
    step: int | None = None
    loss: float | None = None
    points: list = field(default_factory=list)
    done: dict | None = None
    error: dict | None = None
    preempted: dict | None = None
    checkpoints: list = field(default_factory=list)  # written by the child, not yet stored
    stop: str = ""  # "", "cancel", "preempt", "timeout" or "lost"
    device: str | None = None

    def take(self, event: dict) -> None:
        kind = event.get("event")
        if kind == "start":
            self.total = event.get("total_steps")
            self.device = event.get("device")
        elif kind == "progress":
            self.step, self.total = event["step"], event.get("total_steps", self.total)
            self.loss = event.get("loss")
            if self.loss is not None:
                self.points.append((self.step, "loss", float(self.loss)))
        elif kind == "eval":
            for name, value in (event.get("metrics") or {}).items():
                if isinstance(value, (int, float)):
                    metric = name if name.startswith("eval_") else f"eval_{name}"
                    self.points.append((event["step"], metric, float(value)))
        elif kind == "resumed":
            self.step = event["step"]
        elif kind == "checkpoint":
            self.checkpoints.append(event)
        elif kind == "preempted":
            self.preempted = event
        elif kind == "done":
            self.done = event
        elif kind == "error":
            self.error = event


def worker_id(worker: str = "") -> str:
    """The lease owner: "<Celery node name>/<pid>" (jobs.selectors.job_running_on relies on the slash)."""
    return f"{worker or socket.gethostname()}/{os.getpid()}"


def _materialise_dataset(dataset: Dataset) -> Path:
    """Cache dataset bytes by sha256, so a worker fetches each file from the database once."""
    folder = settings.WORKER_DIR / "datasets"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{dataset.sha256}.{dataset.format}"
    if not path.exists():
        blob_write_to_path(dataset.blob, path)
    return path


def _materialise_zip(blob, workdir: Path, name: str) -> Path:
    archive, folder = workdir / f"{name}.zip", workdir / name
    blob_write_to_path(blob, archive)
    unzip_safely(archive, folder)
    archive.unlink()
    return folder


def _materialise_start(job: Job, workdir: Path) -> dict | None:
    """The adapter a job starts from, unzipped from its blob into the job's folder."""
    if job.start_from_id is None:
        return None
    artifact = Artifact.objects.get(job_id=job.start_from_id, kind=Artifact.Kind.ADAPTER)
    return {"adapter_dir": str(_materialise_zip(artifact.blob, workdir, "start")),
            "mode": job.start_mode or "continue"}


def _materialise_checkpoint(job: Job, workdir: Path) -> str | None:
    """The job's last checkpoint (written by peftcore.checkpoints: safetensors and JSON, never a pickle)."""
    if job.checkpoint_id is None:
        return None
    return str(_materialise_zip(Blob.objects.get(pk=job.checkpoint_id), workdir, "resume"))


def _build_spec(job: Job, workdir: Path, model_path: Path) -> dict:
    return {
        "start_from": _materialise_start(job, workdir),
        "resume_from": _materialise_checkpoint(job, workdir),
        "task": job.task,
        "model_path": str(model_path),
        "method": job.method,
        "method_params": job.method_params,
        "train_file": str(_materialise_dataset(job.dataset)),
        "train_format": job.dataset.format,
        "eval_file": str(_materialise_dataset(job.eval_dataset)) if job.eval_dataset else None,
        "eval_format": job.eval_dataset.format if job.eval_dataset else None,
        "text_column": job.text_column,
        "label_column": job.label_column,
        "input_column": job.input_column or None,
        "messages_column": job.messages_column or None,
        "template": job.template or None,
        "params": job.params,
        "micro_batch_size": job.micro_batch_size,
        "output_dir": str(workdir / "out"),
        "checkpoint_dir": str(workdir / "checkpoints"),
        "checkpoint_every_seconds": settings.CHECKPOINT_EVERY_SECONDS or None,
        "checkpoint_every_steps": settings.CHECKPOINT_EVERY_STEPS or None,
        "threads": settings.TRAIN_THREADS,
        "metadata": {
            "job_id": job.pk,
            "base_model": job.base_model.source,
            "dataset_name": job.dataset.name,
            "dataset_sha256": job.dataset.sha256,
            "eval_dataset_sha256": job.eval_dataset.sha256 if job.eval_dataset else None,
        },
    }


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _exited(proc: subprocess.Popen, timeout: float) -> bool:
    """Wait up to `timeout` for the child to exit WITHOUT reaping it: while its zombie remains, its process
    group id cannot be reused, so the SIGKILL that follows reaches only what the child started."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return True
        except ChildProcessError:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def _kill_group(proc: subprocess.Popen) -> None:
    """Whatever is left of the child's process group goes, which also frees its accelerator memory; then the
    child is reaped."""
    _signal_group(proc, signal.SIGKILL)
    proc.wait()


def _pump(stream, lines: queue.Queue) -> None:
    # A thread, so the main loop can wake up for heartbeats even while the child prints nothing.
    for line in stream:
        lines.put(line)
    lines.put(None)


def _tail(path: Path) -> str:
    with open(path, "rb") as fh:
        fh.seek(max(0, path.stat().st_size - STDERR_TAIL_BYTES))
        return fh.read().decode("utf-8", "replace")


def _give_up_after() -> float:
    """Seconds without a successful renewal after which the runner stops its child: two heartbeats before the
    lease runs out, so the reaper never hands the job to another worker while this child still trains."""
    return settings.JOB_LEASE_SECONDS - 2 * settings.RUNNER_FLUSH_SECONDS


@contextmanager
def _lease_kept(job: Job, on_renewed=None):
    """Renew the lease from a thread while the runner does slow work outside the event loop
    (materialising data, downloading a model, storing a checkpoint, publishing the adapter)."""
    stop = threading.Event()

    def renew():
        try:
            while not stop.wait(settings.RUNNER_FLUSH_SECONDS):
                try:
                    if runtime.job_heartbeat(job=job) != "lost" and on_renewed is not None:
                        on_renewed()
                except DatabaseError:
                    log.warning("job %s: lease renewal failed; retrying", job.pk)
                    connection.close()  # reconnect on the next try
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=renew, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _zip_folder(folder: Path, target: Path, compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(target, "w", compression=compression) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(folder).as_posix())
    return target


def _oom_kills() -> int | None:
    """The kernel's out-of-memory kill count for this cgroup (v2), to tell an OOM kill from another SIGKILL."""
    try:
        for line in Path("/sys/fs/cgroup/memory.events").read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == "oom_kill":
                return int(value)
    except (OSError, ValueError):
        pass
    return None


class Supervisor:
    """Follows one training child: batched writes, checkpoints to the database, and stopping it when the
    job is cancelled, the worker shuts down, the time limit passes or the lease is lost."""

    def __init__(self, job: Job, proc: subprocess.Popen, workdir: Path, terminated: threading.Event):
        self.job, self.proc, self.workdir, self.terminated = job, proc, workdir, terminated
        self.state = RunState()
        self.lines: queue.Queue = queue.Queue()
        self.eof = False
        self.started = self.renewed = time.monotonic()
        self.expired = threading.Event()  # set by the watchdog: the lease is as good as gone
        self.limit = job.time_limit_seconds or settings.JOB_TIME_LIMIT_SECONDS
        self.stop_deadline: float | None = None

    def run_seconds(self) -> float:
        return self.job.run_seconds + time.monotonic() - self.started

    def mark_renewed(self) -> None:
        self.renewed = time.monotonic()

    def watchdog(self, done: threading.Event) -> None:
        """Stop the child once the lease has not been renewed for _give_up_after(), whatever the main thread
        is doing (a database call can hang for minutes in a network partition)."""
        while not done.wait(settings.RUNNER_FLUSH_SECONDS / 2):
            if time.monotonic() - self.renewed > _give_up_after():
                log.error("job %s: lease not renewed for %.0fs; killing training", self.job.pk,
                          time.monotonic() - self.renewed)
                self.expired.set()
                _signal_group(self.proc, signal.SIGKILL)
                return

    def _take(self, line: str) -> None:
        if line.strip():
            try:
                self.state.take(json.loads(line))
            except (ValueError, KeyError, TypeError):
                log.warning("job %s: ignoring a non-event line from training: %r", self.job.pk, line[:200])

    def follow(self) -> None:
        """Read events until the child closes stdout, it overstays a stop request, or the lease is lost."""
        threading.Thread(target=_pump, args=(self.proc.stdout, self.lines), daemon=True).start()
        next_flush = time.monotonic() + settings.RUNNER_FLUSH_SECONDS
        while not self.eof:
            wake = min(next_flush, self.stop_deadline or next_flush)
            try:
                line = self.lines.get(timeout=max(0.0, wake - time.monotonic()))
                if line is None:
                    self.eof = True
                else:
                    self._take(line)
            except queue.Empty:
                pass
            if self.expired.is_set():
                self.state.stop = "lost"
                return
            now = time.monotonic()
            if now >= next_flush or self.eof:
                outcome = self._flush()
                if outcome == "lost" or (outcome == "error" and now - self.renewed > _give_up_after()):
                    self.state.stop = "lost"
                    return
                if outcome == "cancel":
                    self._request_stop("cancel")
                elif self.terminated.is_set() or shutting_down():
                    self._request_stop("preempt")
                elif self.run_seconds() > self.limit:
                    self._request_stop("timeout")
                if not self.store_checkpoint():
                    self.state.stop = "lost"
                    return
                next_flush = time.monotonic() + settings.RUNNER_FLUSH_SECONDS
            if self.stop_deadline is not None and time.monotonic() >= self.stop_deadline:
                log.warning("job %s: training did not stop within %ss; killing it", self.job.pk,
                            settings.RUNNER_STOP_GRACE_SECONDS)
                return

    def drain(self) -> None:
        """After the kill: the events the child printed last (its stop checkpoint) are still in the pipe."""
        while not self.eof:
            try:
                line = self.lines.get(timeout=5)
            except queue.Empty:
                return
            if line is None:
                self.eof = True
            else:
                self._take(line)

    def _request_stop(self, why: str) -> None:
        if self.state.stop == why or (self.state.stop and why != "cancel"):
            return  # a cancel overrides a shutdown or a time limit already under way: the user decided
        log.info("job %s: stopping training (%s)", self.job.pk, why)
        first = not self.state.stop
        self.state.stop = why
        if first:
            # SIGTERM asks the child to checkpoint and exit (peftcore.cli); it is killed if it overstays.
            _signal_group(self.proc, signal.SIGTERM)
            self.stop_deadline = time.monotonic() + settings.RUNNER_STOP_GRACE_SECONDS

    def _flush(self) -> str:
        state = self.state
        points, state.points = state.points, []
        try:
            outcome = runtime.job_heartbeat(job=self.job, step=state.step, total=state.total, loss=state.loss,
                                            points=points, run_seconds=round(self.run_seconds(), 1),
                                            device=state.device)
        except DatabaseError:
            log.exception("job %s: heartbeat failed; keeping %d points for the next one", self.job.pk, len(points))
            state.points = points + state.points
            close_old_connections()
            return "error"
        if outcome != "lost":
            self.mark_renewed()
        return outcome

    def store_checkpoint(self) -> bool:
        """Store the newest checkpoint the child wrote as a blob (older unsent ones are superseded).
        False: the lease is gone and the checkpoint was not accepted."""
        if not self.state.checkpoints:
            return True
        newest = max(self.state.checkpoints, key=lambda event: event["step"])
        self.state.checkpoints = []
        folder, blob = Path(newest["path"]), None
        try:
            with _lease_kept(self.job, on_renewed=self.mark_renewed):
                archive = _zip_folder(folder, self.workdir / "checkpoint.zip", zipfile.ZIP_STORED)
                with open(archive, "rb") as fh:
                    blob = blob_create_from_file(fh)
                archive.unlink()
                if not runtime.job_checkpoint(job=self.job, step=newest["step"], blob=blob):
                    blob_delete(blob)
                    return False
        except DatabaseError:
            log.exception("job %s: could not store the checkpoint of step %s", self.job.pk, newest["step"])
            close_old_connections()
            if blob is not None:
                Blob.objects.filter(pk=blob.pk).delete()  # not recorded: nothing else points at it
        finally:
            for old in folder.parent.glob("step-*"):  # this one and any older: the database has what counts
                if old.is_dir() and _step_of(old) <= newest["step"]:
                    shutil.rmtree(old, ignore_errors=True)
        return True


def _step_of(folder: Path) -> int:
    try:
        return int(folder.name.removeprefix("step-"))
    except ValueError:
        return -1


def _supervise(job: Job, spec_path: Path, workdir: Path, terminated: threading.Event) -> tuple[Supervisor, int, str]:
    python = settings.TRAIN_PYTHON or sys.executable
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PEFTCORE_PARENT_PID": str(os.getpid()),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(settings.BASE_DIR), os.environ.get("PYTHONPATH")]))}
    stderr_path = workdir / "train.log"
    with open(stderr_path, "wb") as stderr:
        # A new session makes the child a process-group leader, so a kill reaches everything it started.
        proc = subprocess.Popen([python, "-m", "peftcore", "train", "--spec", str(spec_path)],
                                stdout=subprocess.PIPE, stderr=stderr, cwd=settings.BASE_DIR, env=env,
                                start_new_session=True, text=True, bufsize=1)
        supervisor = Supervisor(job, proc, workdir, terminated)
        watchdog_done = threading.Event()
        threading.Thread(target=supervisor.watchdog, args=(watchdog_done,), daemon=True).start()
        try:
            supervisor.follow()
            if supervisor.eof:  # stdout is closed, so the child is exiting; one that hangs instead is killed
                _exited(proc, settings.RUNNER_STOP_GRACE_SECONDS)
        finally:
            watchdog_done.set()
            # Whatever went wrong in the runner, the child must not train on unsupervised.
            _kill_group(proc)
        if supervisor.expired.is_set():
            supervisor.state.stop = "lost"
        if supervisor.state.stop != "lost":
            supervisor.drain()
            if not supervisor.store_checkpoint():
                supervisor.state.stop = "lost"
    return supervisor, proc.returncode, _tail(stderr_path)


def _crash_message(returncode: int, tail: str, oom_killed: bool) -> tuple[str, str]:
    if oom_killed:
        return Job.ErrorKind.OUT_OF_MEMORY, "the system killed the training process for running out of memory"
    if returncode in (-signal.SIGKILL, 137):
        return (Job.ErrorKind.INTERNAL,
                "the training process was killed (SIGKILL), most often by the system for running out of memory")
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
        runtime.job_fail(job=job, kind=Job.ErrorKind.OUT_OF_MEMORY, outcome=JobAttempt.Outcome.OUT_OF_MEMORY,
                         message=f"training ran out of memory even with a micro-batch of {current} row(s); try a "
                                 "shorter max length, a smaller base model or a method with fewer trainable "
                                 "parameters")
        return "out of memory"
    steps = -(-batch // half)
    runtime.job_requeue(job=job, outcome=JobAttempt.Outcome.OUT_OF_MEMORY, micro_batch_size=half,
                        message=f"ran out of memory with a micro-batch of {current}; retrying from "
                                f"{_from_step(job)} with a micro-batch of {half} and {steps} gradient accumulation "
                                f"steps (the same effective batch of {batch})")
    return "out of memory; retrying with a smaller micro-batch"


def _finish(job: Job, supervisor: Supervisor, returncode: int, tail: str, oom_killed: bool) -> str:
    """Turn how the child ended into the job's next state; every write is fenced by the attempt."""
    state = supervisor.state
    if state.stop == "lost":
        runtime.job_attempt_lost(job=job, message="the lease was lost (another worker took the job over); "
                                                  "this worker stopped its training")
        return "lease lost"
    if state.stop == "cancel":
        runtime.job_fail(job=job, kind=Job.ErrorKind.CANCELLED, status=Job.Status.CANCELLED,
                         message=f"cancelled by a user while running{runtime.resume_hint(job)}")
        return "cancelled"
    if state.done:  # the adapter folder is complete once "done" is out, whatever the exit code
        with _lease_kept(job):
            zip_path = _zip_folder(Path(state.done["adapter_dir"]), supervisor.workdir / "adapter.zip")
            with open(zip_path, "rb") as fh:
                blob = blob_create_from_file(fh)
        filename = f"job-{job.pk}-{job.method}-adapter.zip"
        try:
            published = runtime.job_succeed(job=job, metrics=state.done.get("metrics", {}),
                                            report=state.done.get("report", {}), adapter_blob=blob, filename=filename)
        except Exception:
            blob_delete(blob)  # nothing points at it; the runner error below fails the attempt
            raise
        if not published:
            blob_delete(blob)
            return "lease lost before publishing"
        return "succeeded"
    if state.stop == "timeout":
        runtime.job_fail(job=job, kind=Job.ErrorKind.TIMEOUT, outcome=JobAttempt.Outcome.TIMEOUT,
                         message=f"stopped at its time limit of {_duration(supervisor.limit)} of training; resume "
                                 f"it to go on from {_from_step(job)} for another {_duration(supervisor.limit)}")
        return "timed out"
    if state.stop == "preempt" or state.preempted:
        runtime.job_requeue(job=job, outcome=JobAttempt.Outcome.PREEMPTED,
                            message=f"its worker shut down; queued again to resume from {_from_step(job)}")
        return "preempted"
    if state.error:
        if state.error.get("kind") == Job.ErrorKind.OUT_OF_MEMORY:
            return _retry_out_of_memory(job, state.error.get("micro_batch_size"))
        runtime.job_fail(job=job, kind=state.error.get("kind", Job.ErrorKind.INTERNAL),
                         message=state.error.get("message", "training failed"))
        return "failed"
    kind, message = _crash_message(returncode, tail, oom_killed)
    if kind == Job.ErrorKind.OUT_OF_MEMORY:
        return _retry_out_of_memory(job, None)
    failures = job.failures + 1
    if failures < settings.JOB_MAX_FAILURES:
        runtime.job_requeue(job=job, outcome=JobAttempt.Outcome.CRASHED, failed=True,
                            message=f"{message}; queued again to resume from {_from_step(job)} "
                                    f"(crash {failures} of at most {settings.JOB_MAX_FAILURES})")
        return "crashed; requeued"
    runtime.job_fail(job=job, kind=kind, outcome=JobAttempt.Outcome.CRASHED, failed=True,
                     message=f"{message}. It crashed {failures} time(s), the most allowed; giving up")
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


def run(job_id: int | None = None, *, worker: str = "") -> str:
    """Claim the job whose turn it is, train, publish. Returns what happened, for the worker's log.
    `job_id` names the job whose message arrived; any queued job may be the one claimed (fair share)."""
    job = runtime.job_claim_next(owner=worker_id(worker))
    if job is None:
        return "nothing to claim"
    workdir = settings.WORKER_DIR / "jobs" / f"{job.pk}-{job.attempt}"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    try:
        with _lease_kept(job):
            try:
                model_path = resolve_model(job.base_model.source, model_root=settings.MODEL_ROOT,
                                           revision=job.base_model.revision or None)
            except ModelRefError as exc:
                runtime.job_fail(job=job, kind=Job.ErrorKind.MODEL_LOAD, message=str(exc))
                return "model not found"
            spec_path = workdir / "spec.json"
            spec_path.write_text(json.dumps(_build_spec(job, workdir, model_path), indent=1))
        before = runtime.job_heartbeat(job=job)  # a cancel while fetching data or the model: do not start
        if before == "lost":
            runtime.job_attempt_lost(job=job, message="the lease was lost before training started")
            return "lease lost"
        if before == "cancel":
            runtime.job_fail(job=job, kind=Job.ErrorKind.CANCELLED, status=Job.Status.CANCELLED,
                             message=f"cancelled by a user before training started{runtime.resume_hint(job)}")
            return "cancelled"
        oom_kills = _oom_kills()
        with _sigterm_noted() as terminated:
            supervisor, returncode, tail = _supervise(job, spec_path, workdir, terminated)
        oom_killed = oom_kills is not None and (_oom_kills() or 0) > oom_kills and returncode == -signal.SIGKILL
        return _finish(job, supervisor, returncode, tail, oom_killed)
    except Exception as exc:
        log.exception("job %s: runner error", job.pk)
        runtime.job_fail(job=job, kind=Job.ErrorKind.INTERNAL, message=f"{type(exc).__name__}: {exc}")
        return "runner error"
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
