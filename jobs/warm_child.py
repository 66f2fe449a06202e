"""The next training child, started before its job: `python -m peftcore train --spec -` imports torch,
transformers and peft (seconds on a CPU) and then waits for a spec's path on stdin. A worker keeps one ready after
each job, and starts one as soon as it claims a job when none is ready, so the imports overlap with fetching the
data and the model. The child is what the supervisor would have started anyway (its own session, the runner as
its parent-death signal, stdout for events), only earlier; its stderr file moves into the job's folder when it
is taken. TRAIN_WARM_CHILD=false starts each child at its job instead (an idle child holds ~0.3-0.5 GB)."""

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from .child_process import kill_group


@dataclass
class _Warm:
    proc: subprocess.Popen
    log: Path
    command: tuple


_ready: _Warm | None = None  # one per worker process: it runs one job at a time


def _command() -> tuple:
    return (settings.TRAIN_PYTHON or sys.executable, "-m", "peftcore", "train", "--spec", "-")


def _start(log: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "PEFTCORE_PARENT_PID": str(os.getpid()),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(settings.BASE_DIR), os.environ.get("PYTHONPATH")])),
    }
    with open(log, "wb") as stderr:
        # A new session makes the child a process-group leader, so a kill reaches everything it started.
        return subprocess.Popen(
            list(_command()),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            cwd=settings.BASE_DIR,
            env=env,
            start_new_session=True,
            text=True,
            bufsize=1,
        )


def prepare() -> None:
    """Have a warm child ready (when enabled): one that died while it waited is replaced."""
    global _ready
    if not settings.TRAIN_WARM_CHILD:
        return
    if _ready is not None and _ready.proc.poll() is None and _ready.command == _command():
        return
    discard()
    folder = settings.WORKER_DIR / "warm"
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / f"{os.getpid()}.log"
    _ready = _Warm(_start(log), log, _command())


def take(spec_path: Path, workdir: Path) -> tuple[subprocess.Popen, Path]:
    """The child for this job, told its spec: the warm one if it is alive, else a new one; and its stderr file,
    now in the job's folder."""
    global _ready
    stderr_path = workdir / "train.log"
    warm, _ready = _ready, None
    if warm is not None and warm.proc.poll() is None and warm.command == _command():
        os.replace(warm.log, stderr_path)  # the child keeps writing to it under its new name
        proc = warm.proc
    else:
        if warm is not None:
            _discard(warm)
        proc = _start(stderr_path)
    try:
        proc.stdin.write(f"{spec_path}\n")
        proc.stdin.close()
    except OSError:  # it died just now: the supervisor sees it exit and reports its stderr
        pass
    return proc, stderr_path


def discard() -> None:
    global _ready
    warm, _ready = _ready, None
    if warm is not None:
        _discard(warm)


def _discard(warm: _Warm) -> None:
    kill_group(warm.proc)
    warm.log.unlink(missing_ok=True)
