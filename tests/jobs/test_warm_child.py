"""The warm training child (jobs/warm_child.py): started before its job, handed its spec on stdin, replaced when
it died while waiting, and left out when TRAIN_WARM_CHILD is off. Real processes, no stubs."""

import json

import pytest

from jobs import warm_child


@pytest.fixture(autouse=True)
def _no_child_left():
    yield
    warm_child.discard()


def _events(proc) -> list[dict]:
    out = proc.stdout.read()  # the supervisor reads it the same way (stdin is already closed: no communicate)
    proc.wait(timeout=120)
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_the_warm_child_is_the_one_a_job_gets_and_it_reads_its_spec_from_stdin(settings, tmp_path):
    settings.TRAIN_WARM_CHILD = True
    warm_child.prepare()
    ready = warm_child._ready
    assert ready is not None and ready.proc.poll() is None
    warm_child.prepare()  # already ready: the same child stays
    assert warm_child._ready is ready
    workdir = tmp_path / "job"
    workdir.mkdir()
    proc, log = warm_child.take(tmp_path / "no-such-spec.json", workdir)
    assert proc is ready.proc and log == workdir / "train.log" and log.exists() and not ready.log.exists()
    events = _events(proc)
    # It read the path it was given: the spec it names does not exist, and it says so as a job's error.
    assert events[-1]["event"] == "error" and "no-such-spec.json" in events[-1]["message"], events
    assert proc.returncode != 0 and warm_child._ready is None


def test_a_child_that_died_while_waiting_is_replaced(settings, tmp_path):
    settings.TRAIN_WARM_CHILD = True
    warm_child.prepare()
    first = warm_child._ready.proc
    first.kill()
    first.wait()
    warm_child.prepare()
    assert warm_child._ready.proc.pid != first.pid and warm_child._ready.proc.poll() is None


def test_an_unused_warm_child_exits_cleanly_when_told_there_is_no_job(settings):
    settings.TRAIN_WARM_CHILD = True
    warm_child.prepare()
    proc = warm_child._ready.proc
    proc.stdin.close()  # end of input: no job
    assert proc.wait(timeout=120) == 0 and _events(proc) == []


def test_off_means_each_child_starts_with_its_job(settings, tmp_path):
    settings.TRAIN_WARM_CHILD = False
    warm_child.prepare()
    assert warm_child._ready is None
    proc, log = warm_child.take(tmp_path / "missing.json", tmp_path)
    assert log == tmp_path / "train.log" and _events(proc)[-1]["event"] == "error"
