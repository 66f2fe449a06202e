"""The worker process's own duties, wired to Celery's signals in webapp/celery.py: a heartbeat row the admin
dashboard shows (host, queues, accelerators, memory, the job it runs), and telling its runners that it is
shutting down so they checkpoint and give their jobs back instead of dying with them."""

import logging
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone

from .idle_workers import nudge_if_idle
from .models import WorkerHeartbeat
from .selectors import job_running_on

log = logging.getLogger(__name__)


def _shutdown_flag(pid: int) -> Path:
    # In this host's temporary folder, keyed by host name too: WORKER_DIR may be a volume that scaled
    # containers share, where every worker's main process is PID 1.
    return Path(tempfile.gettempdir()) / "studio-worker-shutdown" / f"{socket.gethostname()}-{pid}"


def mark_shutting_down() -> None:
    """Called in the worker's main process on a warm shutdown (SIGTERM). Its pool processes read it."""
    path = _shutdown_flag(os.getpid())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


def clear_shutdown_flag() -> None:
    _shutdown_flag(os.getpid()).unlink(missing_ok=True)


def shutting_down() -> bool:
    """True once the worker this process belongs to (its parent with a process pool, itself with the solo
    pool) began a warm shutdown."""
    return _shutdown_flag(os.getppid()).exists() or _shutdown_flag(os.getpid()).exists()


def gpus() -> list[dict]:
    """Name and memory of each NVIDIA GPU, from nvidia-smi (the worker's main process does not import torch)."""
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total,memory.used", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    found = []
    for line in out.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
            found.append({"name": parts[0], "memory_total_mb": int(parts[1]), "memory_used_mb": int(parts[2])})
    return found


def memory() -> dict:
    """Total and available RAM in MB (Linux /proc/meminfo; empty elsewhere)."""
    try:
        fields = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines() if ":" in line)
        return {
            key: int(fields[name].split()[0]) // 1024
            for key, name in (("total_mb", "MemTotal"), ("available_mb", "MemAvailable"))
            if name in fields
        }
    except (OSError, ValueError):
        return {}


def worker_heartbeat_write(*, name: str, queues: list[str], concurrency: int | None, stopped: bool = False) -> None:
    now = timezone.now()
    info = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "queues": queues,
        "concurrency": concurrency,
        "gpus": gpus(),
        "memory": memory(),
    }
    fields = {"info": info, "seen_at": now, "stopped": stopped, "running_job_id": job_running_on(worker=name)}
    # A worker that stopped and came back under the same name starts its uptime again.
    restarted = WorkerHeartbeat.objects.filter(hostname=name, stopped=True).exists() and not stopped
    WorkerHeartbeat.objects.update_or_create(
        hostname=name,
        defaults={**fields, **({"started_at": now} if restarted else {})},
        create_defaults={**fields, "started_at": now},
    )


class HeartbeatThread(threading.Thread):
    def __init__(self, *, name: str, queues: list[str], concurrency: int | None):
        super().__init__(daemon=True, name="worker-heartbeat")
        self.worker, self.queues, self.concurrency = name, queues, concurrency
        self.stop_event = threading.Event()

    def run(self) -> None:
        while True:
            try:
                worker_heartbeat_write(name=self.worker, queues=self.queues, concurrency=self.concurrency)
                nudge_if_idle(worker=self.worker, queues=self.queues, concurrency=self.concurrency)
            except DatabaseError:
                log.warning("worker heartbeat failed; retrying", exc_info=True)
            finally:
                connection.close()  # this thread's own connection; one every few seconds costs nothing
            if self.stop_event.wait(settings.WORKER_HEARTBEAT_SECONDS):
                return

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=5)
        try:
            worker_heartbeat_write(name=self.worker, queues=self.queues, concurrency=self.concurrency, stopped=True)
        except DatabaseError:
            log.warning("could not mark worker %s stopped", self.worker, exc_info=True)
        finally:
            connection.close()
