"""Supervises one training run as a child process (`python -m peftcore train --spec spec.json`).

The child prints one JSON event per line. The runner turns them into batched writes (one heartbeat write
every RUNNER_FLUSH_SECONDS: metric points, progress, lease renewal, cancel check), so the database sees a
handful of queries per minute however fast training steps are. Cancel or a lost lease kills the child's
process group, which also frees its accelerator memory.
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

from . import services
from .models import Artifact, Dataset, Job
from .storage import blob_create_from_file, blob_delete, blob_write_to_path, unzip_safely

log = logging.getLogger(__name__)

KILL_GRACE_SECONDS = 10
STDERR_TAIL_BYTES = 3000


@dataclass
class RunState:
    total: int | None = None
    step: int | None = None
    loss: float | None = None
    points: list = field(default_factory=list)
    done: dict | None = None
    error: dict | None = None
    stop: str = ""  # "", "cancel" or "lost"

    def take(self, event: dict) -> None:
        kind = event.get("event")
        if kind == "start":
            self.total = event.get("total_steps")
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
        elif kind == "done":
            self.done = event
        elif kind == "error":
            self.error = event


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _materialise_dataset(dataset: Dataset) -> Path:
    """Cache dataset bytes by sha256, so a worker fetches each file from the database once."""
    folder = settings.WORKER_DIR / "datasets"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{dataset.sha256}.{dataset.format}"
    if not path.exists():
        blob_write_to_path(dataset.blob, path)
    return path


def _materialise_start(job: Job, workdir: Path) -> dict | None:
    """The adapter a job starts from, unzipped from its blob into the job's folder."""
    if job.start_from_id is None:
        return None
    artifact = Artifact.objects.get(job_id=job.start_from_id, kind=Artifact.Kind.ADAPTER)
    archive, folder = workdir / "start.zip", workdir / "start"
    blob_write_to_path(artifact.blob, archive)
    unzip_safely(archive, folder)
    archive.unlink()
    return {"adapter_dir": str(folder), "mode": job.start_mode or "continue"}


def _build_spec(job: Job, workdir: Path, model_path: Path) -> dict:
    return {
        "start_from": _materialise_start(job, workdir),
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
        "output_dir": str(workdir / "out"),
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


def _kill_group(proc: subprocess.Popen) -> None:
    """End the child and everything it started: SIGTERM, a grace period, then SIGKILL for what is left."""
    if proc.poll() is None:
        _signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(timeout=KILL_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            pass
    _signal_group(proc, signal.SIGKILL)
    proc.wait()


def _pump(stream, lines: queue.Queue) -> None:
    # A thread, so the main loop can wake up for heartbeats even while the child prints nothing.
    for line in stream:
        lines.put(line)
    lines.put(None)


def _supervise(job: Job, spec_path: Path, workdir: Path) -> tuple[RunState, int, str]:
    python = settings.TRAIN_PYTHON or sys.executable
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PEFTCORE_PARENT_PID": str(os.getpid()),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(settings.BASE_DIR), os.environ.get("PYTHONPATH")]))}
    stderr_path = workdir / "train.log"
    state = RunState()
    with open(stderr_path, "wb") as stderr:
        # A new session makes the child a process-group leader, so a kill reaches everything it started.
        proc = subprocess.Popen([python, "-m", "peftcore", "train", "--spec", str(spec_path)],
                                stdout=subprocess.PIPE, stderr=stderr, cwd=settings.BASE_DIR, env=env,
                                start_new_session=True, text=True, bufsize=1)
        try:
            _follow(job, proc, state)
            try:  # stdout is closed, so the child is exiting; one that hangs instead is killed below
                proc.wait(timeout=KILL_GRACE_SECONDS * 3)
            except subprocess.TimeoutExpired:
                pass
        finally:
            # Whatever went wrong in the runner, the child must not train on unsupervised.
            _kill_group(proc)
    return state, proc.returncode, _tail(stderr_path)


def _follow(job: Job, proc: subprocess.Popen, state: RunState) -> None:
    """Read events until the child closes stdout; flush them in batches; stop on cancel or a lost lease."""
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True).start()
    next_flush = time.monotonic() + settings.RUNNER_FLUSH_SECONDS
    last_ok = time.monotonic()
    eof = False
    while not eof:
        try:
            line = lines.get(timeout=max(0.0, next_flush - time.monotonic()))
            if line is None:
                eof = True
            elif line.strip():
                try:
                    state.take(json.loads(line))
                except (ValueError, KeyError, TypeError):
                    log.warning("job %s: ignoring a non-event line from training: %r", job.pk, line[:200])
        except queue.Empty:
            pass
        if time.monotonic() >= next_flush or eof:
            outcome = _flush(job, state)
            if outcome == "error":
                # A passing database outage is tolerated until the lease would have run out.
                if time.monotonic() - last_ok > settings.JOB_LEASE_SECONDS:
                    outcome = "lost"
            else:
                last_ok = time.monotonic()
            if outcome in ("cancel", "lost"):
                state.stop = outcome
                return
            next_flush = time.monotonic() + settings.RUNNER_FLUSH_SECONDS


def _flush(job: Job, state: RunState) -> str:
    points, state.points = state.points, []
    try:
        return services.job_heartbeat(job=job, step=state.step, total=state.total, loss=state.loss, points=points)
    except DatabaseError:
        log.exception("job %s: heartbeat failed; keeping %d points for the next one", job.pk, len(points))
        state.points = points + state.points
        close_old_connections()
        return "error"


def _tail(path: Path) -> str:
    with open(path, "rb") as fh:
        fh.seek(max(0, path.stat().st_size - STDERR_TAIL_BYTES))
        return fh.read().decode("utf-8", "replace")


@contextmanager
def _lease_kept(job: Job):
    """Renew the lease from a thread while the runner does slow work outside the event loop
    (materialising data, downloading a model, publishing the adapter)."""
    stop = threading.Event()

    def renew():
        try:
            while not stop.wait(settings.RUNNER_FLUSH_SECONDS):
                try:
                    services.job_heartbeat(job=job)
                except DatabaseError:
                    log.warning("job %s: lease renewal failed; retrying", job.pk)
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=renew, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _zip_folder(folder: Path, target: Path) -> Path:
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(folder).as_posix())
    return target


def _crash_message(returncode: int, tail: str) -> tuple[str, str]:
    if returncode in (-signal.SIGKILL, 137):
        return (Job.ErrorKind.OUT_OF_MEMORY,
                "the training process was killed by the system, most often for running out of memory; "
                "try a smaller batch size or max length")
    last = tail.strip().splitlines()[-1] if tail.strip() else "no output"
    return Job.ErrorKind.INTERNAL, f"the training process exited with code {returncode}: {last}"


def run(job_id: int) -> str:
    """Claim, train, publish. Returns what happened, for the worker's log."""
    job = services.job_claim(job_id=job_id, owner=worker_id())
    if job is None:
        return "not claimed"
    workdir = settings.WORKER_DIR / "jobs" / f"{job.pk}-{job.attempt}"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    try:
        with _lease_kept(job):
            try:
                model_path = resolve_model(job.base_model.source, model_root=settings.MODEL_ROOT,
                                           revision=job.base_model.revision or None)
            except ModelRefError as exc:
                services.job_fail(job=job, kind=Job.ErrorKind.MODEL_LOAD, message=str(exc))
                return "model not found"
            spec_path = workdir / "spec.json"
            spec_path.write_text(json.dumps(_build_spec(job, workdir, model_path), indent=1))
        state, returncode, tail = _supervise(job, spec_path, workdir)
        if state.stop == "cancel":
            services.job_fail(job=job, kind=Job.ErrorKind.CANCELLED, message="cancelled by a user while running",
                              status=Job.Status.CANCELLED)
            return "cancelled"
        if state.stop == "lost":
            return "lease lost"
        if state.done:  # the adapter folder is complete once "done" is out, whatever the exit code
            with _lease_kept(job):
                zip_path = _zip_folder(Path(state.done["adapter_dir"]), workdir / "adapter.zip")
                with open(zip_path, "rb") as fh:
                    blob = blob_create_from_file(fh)
            filename = f"job-{job.pk}-{job.method}-adapter.zip"
            if not services.job_succeed(job=job, metrics=state.done.get("metrics", {}),
                                        report=state.done.get("report", {}), adapter_blob=blob, filename=filename):
                blob_delete(blob)
                return "lease lost before publishing"
            return "succeeded"
        if state.error:
            services.job_fail(job=job, kind=state.error.get("kind", Job.ErrorKind.INTERNAL),
                              message=state.error.get("message", "training failed"))
            return "failed"
        kind, message = _crash_message(returncode, tail)
        services.job_fail(job=job, kind=kind, message=message)
        return "crashed"
    except Exception as exc:
        log.exception("job %s: runner error", job.pk)
        services.job_fail(job=job, kind=Job.ErrorKind.INTERNAL, message=f"{type(exc).__name__}: {exc}")
        return "runner error"
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
