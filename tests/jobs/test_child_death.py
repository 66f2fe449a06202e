"""A worker's short-lived children (profiles, merged exports, the model conversion) are started with
jobs.child_process.die_with_parent: when the worker is killed mid-task, its child goes too instead of running on
as an orphan (the studio kills a worker that does not stop within its grace period)."""

import os
import signal
import subprocess
import sys
import time

from jobs import merged_exports, model_folders, profiles
from jobs.child_process import die_with_parent

PARENT = """
import subprocess, sys, time
from jobs.child_process import die_with_parent
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], preexec_fn=die_with_parent)
print(child.pid, flush=True)
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"  # a zombie is dead, only not reaped
    except FileNotFoundError:
        return False


def test_a_child_dies_when_the_process_that_started_it_is_killed():
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    parent = subprocess.Popen([sys.executable, "-c", PARENT], cwd=repo, stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    assert _alive(child)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child)


def test_the_workers_children_are_started_so():
    for module in (profiles, merged_exports, model_folders):
        assert module.die_with_parent is die_with_parent
        assert "preexec_fn=die_with_parent" in open(module.__file__).read()
