"""The training child as an operating-system process: signals to its process group, waiting without reaping,
its output read from a thread, the tail of its log, and the kernel's out-of-memory kill count; and for the
worker's short-lived children (profiles, merged exports), death with their worker."""

import ctypes
import ctypes.util
import os
import queue
import signal
import subprocess
import sys
import time
from pathlib import Path

STDERR_TAIL_BYTES = 3000
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _prctl():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl
    except OSError:
        return None


_PRCTL = _prctl()  # resolved here, not after fork: the child then only makes the call


def die_with_parent() -> None:
    """A subprocess preexec_fn: the child is killed when the process that started it dies (Linux), so a worker
    stopped mid-task (the studio kills a worker that does not stop within its grace period) leaves no orphan
    behind. Elsewhere it does nothing."""
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL)


def signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def exited(proc: subprocess.Popen, timeout: float) -> bool:
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


def kill_group(proc: subprocess.Popen) -> None:
    """Whatever is left of the child's process group goes, which also frees its accelerator memory; then the
    child is reaped."""
    signal_group(proc, signal.SIGKILL)
    proc.wait()


def pump(stream, lines: queue.Queue) -> None:
    # A thread, so the main loop can wake up for heartbeats even while the child prints nothing.
    for line in stream:
        lines.put(line)
    lines.put(None)


def tail(path: Path) -> str:
    with open(path, "rb") as fh:
        fh.seek(max(0, path.stat().st_size - STDERR_TAIL_BYTES))
        return fh.read().decode("utf-8", "replace")


def oom_kills() -> int | None:
    """The kernel's out-of-memory kill count for this cgroup (v2), to tell an OOM kill from another SIGKILL."""
    try:
        for line in Path("/sys/fs/cgroup/memory.events").read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == "oom_kill":
                return int(value)
    except (OSError, ValueError):
        pass
    return None
