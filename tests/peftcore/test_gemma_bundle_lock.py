"""The bundled Gemma's conversion (peftcore/gemma_bundle.py) runs once per model root even when two processes ask
for it together (two maintenance workers on a shared root, the two test shards): the second waits on the first's
file lock, then finds the folder ready."""

import multiprocessing
import time

import pytest

from peftcore import gemma_bundle


def _prepare_counting(root, calls, arrived):
    def convert(target, log):
        with calls.get_lock():
            calls.value += 1
        # convert only once both processes are about to ask, and a little longer: without the lock the other
        # one would then find no folder and convert too
        deadline = time.monotonic() + 20
        while arrived.value < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)
        target.mkdir(parents=True)
        (target / gemma_bundle.MARKER).write_text("{}")

    gemma_bundle._convert = convert
    gemma_bundle.installed = lambda: True
    with arrived.get_lock():
        arrived.value += 1
    gemma_bundle.prepare(root, log=lambda message: None)


def test_two_processes_preparing_together_convert_once(tmp_path):
    context = multiprocessing.get_context("fork")
    calls, arrived = context.Value("i", 0), context.Value("i", 0)
    processes = [context.Process(target=_prepare_counting, args=(tmp_path, calls, arrived)) for _ in range(2)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=60)
        if process.is_alive():
            process.kill()
    assert [p.exitcode for p in processes] == [0, 0]
    assert calls.value == 1 and (gemma_bundle.folder(tmp_path) / gemma_bundle.MARKER).is_file()


def test_a_missing_package_is_said_before_any_lock(tmp_path, monkeypatch):
    monkeypatch.setattr(gemma_bundle, "installed", lambda: False)
    with pytest.raises(RuntimeError, match="pip install"):
        gemma_bundle.prepare(tmp_path)
    assert not list(tmp_path.iterdir())
