"""Real parts for the runtime tests: a private Redis server (so it can be flushed and restarted without touching
anything else), Celery worker processes started and killed at will, and the training processes they run."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings

REPO = Path(__file__).resolve().parents[2]

# Short timings so a lost worker is noticed in seconds (each still nests: webapp.timing).
FAST_RUNTIME = {
    "RUNNER_FLUSH_SECONDS": "0.5",
    "JOB_LEASE_SECONDS": "4",
    "JOB_REAP_SECONDS": "1",
    "RUNNER_STOP_GRACE_SECONDS": "3",
    "JOB_REPUBLISH_SECONDS": "3",
    "CHECKPOINT_EVERY_STEPS": "5",
    "WORKER_HEARTBEAT_SECONDS": "1",
    "JOB_MAX_FAILURES": "3",
    "TRAIN_THREADS": "1",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A redis-server of our own on a free port: flushed, stopped and started again by the tests."""

    def __init__(self, folder: Path):
        self.port, self.folder, self.proc = free_port(), folder, None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.client().ping():
                return self
            time.sleep(0.1)
        raise RuntimeError("redis-server did not start")

    def client(self):
        import redis

        try:
            client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=1)
            client.ping()
            return client
        except redis.ConnectionError:
            return _Down()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def queue_length(self, name: str = "training") -> int:
        return self.client().llen(name)


class _Down:
    def ping(self):
        return False


class Worker:
    """`celery worker` on the private broker and the test database, with FAST_RUNTIME timings."""

    def __init__(
        self,
        name: str,
        broker: RedisServer,
        *,
        queues: str = "training",
        beat: bool = False,
        env: dict | None = None,
        settings_module: str = "tests.settings",
        host: str | None = None,
        home: Path | None = None,
    ):
        """host: the node name's host part (as another machine's worker); home: a STUDIO_HOME of its own (its models,
        caches and job folders: no disk shared with the other workers)."""
        db = settings.DATABASES["default"]
        home = self.home = home or settings.STUDIO_HOME
        self.name = f"{name}-{os.getpid()}@{host or socket.gethostname()}"
        self.log_path = home / f"worker-{self.name}.log"
        self.env = {
            **os.environ,
            **FAST_RUNTIME,
            **(env or {}),
            "DJANGO_SETTINGS_MODULE": settings_module,
            "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
            "CELERY_BROKER_URL": broker.url,
            "STUDIO_HOME": str(home),
            "PYTHONUNBUFFERED": "1",
        }
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "webapp",
            "worker",
            "-Q",
            queues,
            "--concurrency",
            "1",
            "--loglevel",
            "INFO",
            "-n",
            self.name,
            "--without-gossip",
            "--without-mingle",
        ]
        if beat:
            command += ["--pool", "solo", "--beat", "--schedule", str(home / f"beat-{self.name}")]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                command, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + 90
        while b"ready." not in self.log_path.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"worker {self.name} did not start:\n{self.log()[-3000:]}")
            time.sleep(0.2)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def pids(self) -> list[int]:
        """The worker's main process and its pool processes (training children live in their own groups)."""
        out = subprocess.run(["pgrep", "-g", str(self.proc.pid)], capture_output=True, text=True).stdout
        return [int(pid) for pid in out.split()]

    def signal_all(self, sig: int) -> None:
        for pid in self.pids():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        """kill -9 of the worker and its pool (not of the training child, which must notice on its own)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()

    def stop(self, timeout: float = 60) -> int | None:
        """SIGTERM (a warm shutdown), waiting for the worker to exit."""
        self.proc.terminate()
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None


def training_pids(job_id: int | str, attempt: int | str = "[0-9]+", under: Path | None = None) -> list[int]:
    """The processes training the job: those whose stderr is its train.log. A child started warm (jobs/warm_child.py)
    learns its spec on stdin, so its command line does not name the job; its stderr file does, even once the job's
    folder is deleted (the link then ends in " (deleted)"). under: only those of workers with that STUDIO_HOME
    (another test session on the machine has children of its own)."""
    root = re.escape(str(under or settings.STUDIO_HOME))
    pattern = re.compile(rf"^{root}/.*/jobs/{job_id}-{attempt}/train\.log")
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if pattern.search(os.readlink(entry / "fd" / "2")):
                    pids.append(int(entry.name))
            except OSError:  # gone, or not ours to read
                continue
    return pids


def point_celery_at(url: str) -> str:
    """Publish from this (the test) process to another broker; returns the old URL."""
    from webapp.celery import app

    old = app.conf.broker_url
    app.conf.broker_url = url
    os.environ["CELERY_BROKER_URL"] = url  # Celery reads the environment first
    app._pool = None  # connections are pooled per broker: drop them so the next publish connects anew
    app.amqp._producer_pool = None
    return old
