"""The worker's dataset cache keeps to its size (issue 18, row 16): least recently used files go first, never the
one the job needs, nor one used within the last hour (a job starting on another worker of the host)."""

import os
import time

from jobs import workspace
from jobs.models import Dataset


def _file(folder, name, size, hours_ago):
    path = folder / name
    path.write_bytes(b"x" * size)
    then = time.time() - hours_ago * 3600
    os.utime(path, (then, then))
    return path


def test_least_recently_used_files_are_evicted_down_to_the_limit(dataset, settings, tmp_path):
    settings.WORKER_DIR = tmp_path
    folder = tmp_path / "datasets"
    folder.mkdir()
    oldest = _file(folder, "a.tsv", 4000, hours_ago=30)
    older = _file(folder, "b.tsv", 4000, hours_ago=20)
    recent = _file(folder, "c.tsv", 4000, hours_ago=0.5)  # used half an hour ago: kept whatever the size
    settings.WORKER_DATASET_CACHE_BYTES = 6000 + Dataset.objects.get(pk=dataset.pk).size_bytes
    path = workspace.materialise_dataset(dataset)
    assert path.exists() and recent.exists() and not oldest.exists() and not older.exists()
    # Used again: its time moves, so it is the last to go.
    _file(folder, "d.tsv", 100, hours_ago=40)
    os.utime(path, (time.time() - 50 * 3600,) * 2)
    workspace.materialise_dataset(dataset)
    assert time.time() - path.stat().st_mtime < 60


def test_nothing_is_evicted_under_the_limit(dataset, settings, tmp_path):
    settings.WORKER_DIR = tmp_path
    (tmp_path / "datasets").mkdir()
    old = _file(tmp_path / "datasets", "a.tsv", 10, hours_ago=100)
    settings.WORKER_DATASET_CACHE_BYTES = 10**9
    workspace.materialise_dataset(dataset)
    assert old.exists()
