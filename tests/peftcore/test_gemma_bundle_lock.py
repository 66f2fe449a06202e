"""The bundled Gemma's conversion (peftcore/gemma_bundle.py) runs once per model root even when two processes ask
for it together (two maintenance workers on a shared root, the two test shards): the second waits on the first's
file lock, then finds the folder ready."""

import multiprocessing
import time

import pytest

from peftcore import gemma_bundle


def _prepare_counting(root, calls):
    def convert(target, log):
        with calls.get_lock():
            calls.value += 1
        time.sleep(0.5)  # long enough for the other process to arrive while this one converts
        target.mkdir(parents=True)
        (target / gemma_bundle.MARKER).write_text("{}")

    gemma_bundle._convert = convert
    gemma_bundle.installed = lambda: True
    gemma_bundle.prepare(root, log=lambda message: None)


def test_two_processes_preparing_together_convert_once(tmp_path):
    context = multiprocessing.get_context("fork")
    calls = context.Value("i", 0)
    processes = [context.Process(target=_prepare_counting, args=(tmp_path, calls)) for _ in range(2)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=30)
    assert [p.exitcode for p in processes] == [0, 0]
    assert calls.value == 1 and (gemma_bundle.folder(tmp_path) / gemma_bundle.MARKER).is_file()


def test_a_missing_package_is_said_before_any_lock(tmp_path, monkeypatch):
    monkeypatch.setattr(gemma_bundle, "installed", lambda: False)
    with pytest.raises(RuntimeError, match="pip install"):
        gemma_bundle.prepare(tmp_path)
    assert not list(tmp_path.iterdir())
