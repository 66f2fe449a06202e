"""Follows one training child: its JSON events become batched writes, its checkpoints become blobs, and it is
stopped when the job is cancelled, the worker shuts down, the time limit passes or the lease is lost."""

import json
import logging
import queue
import shutil
import signal
import subprocess
import threading
import time
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection

from . import runtime, warm_child
from .child_process import exited, kill_group, pump, signal_group, tail
from .models import Blob, Job
from .storage import blob_create_from_file, blob_delete
from .workers import shutting_down
from .workspace import zip_folder

log = logging.getLogger(__name__)


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
    eta: float | None = None  # the child's estimate of the seconds left, at its latest step
    phase: str | None = None  # what the child says it is doing
    log: list[str] = field(default_factory=list)  # the run's story, for the job's downloadable log
    eta_at: float = 0.0  # monotonic time the ETA was said

    def eta_now(self) -> float | None:
        """The child's ETA less the time since it said it (during an evaluation no step reports a new one)."""
        return None if self.eta is None else max(0.0, round(self.eta - (time.monotonic() - self.eta_at), 1))

    def take(self, event: dict) -> None:
        kind = event.get("event")
        if line := log_line(event):
            self.log.append(f"{time.strftime('%H:%M:%S', time.gmtime())}  {line}")
        if kind == "phase":
            self.phase = str(event.get("phase") or "")[:200]
        elif kind == "start":
            self.total = event.get("total_steps")
            self.device = event.get("device")
        elif kind == "progress":
            self.step, self.total = event["step"], event.get("total_steps", self.total)
            self.loss = event.get("loss")
            self.eta, self.eta_at = event.get("eta_seconds"), time.monotonic()
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


def log_line(event: dict) -> str | None:
    """One line of the job's log for an event worth a line (every step is not: the chart has those)."""
    kind = event.get("event")
    if kind == "phase":
        return str(event.get("phase") or "")[:200]
    if kind == "start":
        return f"training {event.get('total_steps')} steps on the {str(event.get('device') or '?').upper()}"
    if kind == "eval":
        shown = ", ".join(
            f"{name} {value:.4g}" for name, value in (event.get("metrics") or {}).items() if isinstance(value, float)
        )
        return f"evaluated at step {event.get('step')}: {shown}"
    if kind == "checkpoint":
        return f"checkpoint at step {event.get('step')}"
    if kind in ("preempted", "resumed"):
        return f"{kind} at step {event.get('step')}"
    if kind == "done":
        return "done: the adapter is saved"
    if kind == "error":
        return f"error ({event.get('kind')}): {event.get('message')}"
    return None


def give_up_after() -> float:
    """Seconds without a successful renewal after which the runner stops its child: two heartbeats before the
    lease runs out, so the reaper never hands the job to another worker while this child still trains."""
    return settings.JOB_LEASE_SECONDS - 2 * settings.RUNNER_FLUSH_SECONDS


@contextmanager
def lease_kept(job: Job, on_renewed=None):
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
        """Stop the child once the lease has not been renewed for give_up_after(), whatever the main thread
        is doing (a database call can hang for minutes in a network partition)."""
        while not done.wait(settings.RUNNER_FLUSH_SECONDS / 2):
            if time.monotonic() - self.renewed > give_up_after():
                log.error(
                    "job %s: lease not renewed for %.0fs; killing training",
                    self.job.pk,
                    time.monotonic() - self.renewed,
                )
                self.expired.set()
                signal_group(self.proc, signal.SIGKILL)
                return

    def _take(self, line: str) -> None:
        if line.strip():
            try:
                self.state.take(json.loads(line))
            except (ValueError, KeyError, TypeError):
                log.warning("job %s: ignoring a non-event line from training: %r", self.job.pk, line[:200])

    def follow(self) -> None:
        """Read events until the child closes stdout, it overstays a stop request, or the lease is lost."""
        threading.Thread(target=pump, args=(self.proc.stdout, self.lines), daemon=True).start()
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
                if outcome == "lost" or (outcome == "error" and now - self.renewed > give_up_after()):
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
                log.warning(
                    "job %s: training did not stop within %ss; killing it",
                    self.job.pk,
                    settings.RUNNER_STOP_GRACE_SECONDS,
                )
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
            signal_group(self.proc, signal.SIGTERM)
            self.stop_deadline = time.monotonic() + settings.RUNNER_STOP_GRACE_SECONDS

    def _flush(self) -> str:
        state = self.state
        points, state.points = state.points, []
        try:
            outcome = runtime.job_heartbeat(
                job=self.job,
                step=state.step,
                total=state.total,
                loss=state.loss,
                points=points,
                run_seconds=round(self.run_seconds(), 1),
                device=state.device,
                eta_seconds=state.eta_now(),
                phase=state.phase,
            )
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
            with lease_kept(self.job, on_renewed=self.mark_renewed):
                archive = zip_folder(folder, self.workdir / "checkpoint.zip", zipfile.ZIP_STORED)
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
                if old.is_dir() and step_of(old) <= newest["step"]:
                    shutil.rmtree(old, ignore_errors=True)
        return True


def step_of(folder: Path) -> int:
    try:
        return int(folder.name.removeprefix("step-"))
    except ValueError:
        return -1


def supervise(job: Job, spec_path: Path, workdir: Path, terminated: threading.Event) -> tuple[Supervisor, int, str]:
    proc, stderr_path = warm_child.take(spec_path, workdir)
    supervisor = Supervisor(job, proc, workdir, terminated)
    watchdog_done = threading.Event()
    threading.Thread(target=supervisor.watchdog, args=(watchdog_done,), daemon=True).start()
    try:
        supervisor.follow()
        if supervisor.eof:  # stdout is closed, so the child is exiting; one that hangs instead is killed
            exited(proc, settings.RUNNER_STOP_GRACE_SECONDS)
    finally:
        watchdog_done.set()
        # Whatever went wrong in the runner, the child must not train on unsupervised.
        kill_group(proc)
    if supervisor.expired.is_set():
        supervisor.state.stop = "lost"
    if supervisor.state.stop != "lost":
        supervisor.drain()
        if not supervisor.store_checkpoint():
            supervisor.state.stop = "lost"
    return supervisor, proc.returncode, tail(stderr_path)
