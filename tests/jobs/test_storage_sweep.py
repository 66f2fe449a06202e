"""No orphan storage (issue 18, rows 5 and 8): a failure between storing an upload's bytes and recording the
dataset takes the bytes with it, and the storage sweep removes what a killed writer left (a blob nothing points
at, a half-written blob, a stale temporary upload file) once older than its grace period, never what is in use
or still being written, and the dashboard shows what it reclaimed."""

import importlib
import io
import os
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from jobs import storage
from jobs.models import Artifact, Blob, BlobChunk, Dataset, Job, StorageSweep
from jobs.services import dataset_create, storage_sweep
from jobs.tasks import sweep_storage
from tests.factories import job_row


def _boom(*args, **kwargs):
    raise RuntimeError("the database went away")


@pytest.mark.parametrize("target, name", [("jobs.services.datasets", "audit_record"), (Dataset.objects, "create")])
def test_a_failure_after_the_bytes_are_stored_leaves_no_blob(alice, sst2_sample, monkeypatch, target, name):
    monkeypatch.setattr(importlib.import_module(target) if isinstance(target, str) else target, name, _boom)
    team = alice.memberships.first().team
    with pytest.raises(RuntimeError):
        dataset_create(team=team, user=alice, name="d", path=sst2_sample, filename="d.tsv")
    assert not Blob.objects.exists() and not BlobChunk.objects.exists() and not Dataset.objects.exists()


def _aged(blob: Blob, hours: float = 7) -> Blob:
    Blob.objects.filter(pk=blob.pk).update(created_at=timezone.now() - timedelta(hours=hours))
    return blob


def _admin_page(alice) -> str:
    from teams.models import Membership

    Membership.objects.filter(user=alice).update(role=Membership.Role.ADMIN)
    client = Client()
    client.force_login(alice)
    return client.get("/team/").content.decode()


def test_the_sweep_removes_orphans_and_keeps_what_is_used_or_in_flight(dataset, tiny_model, alice):
    _aged(storage.blob_create_from_file(io.BytesIO(b"x" * 5000)))  # an upload whose dataset was never recorded
    half = _aged(Blob.objects.create(sha256="", size=0))  # its writer was killed mid-way
    BlobChunk.objects.create(blob=half, index=0, data=b"y" * 3000)
    young = storage.blob_create_from_file(io.BytesIO(b"being recorded right now"))
    _aged(dataset.blob)
    job = job_row(dataset, tiny_model, status=Job.Status.SUCCEEDED)
    adapter = _aged(storage.blob_create_from_file(io.BytesIO(b"adapter")))
    Artifact.objects.create(job=job, kind="adapter", filename="a.zip", blob=adapter, size_bytes=7, sha256="")
    checkpoint = _aged(storage.blob_create_from_file(io.BytesIO(b"checkpoint")))
    Job.objects.filter(pk=job.pk).update(checkpoint=checkpoint)
    folder = settings.FILE_UPLOAD_TEMP_DIR
    stale, fresh = os.path.join(folder, "stale.upload"), os.path.join(folder, "fresh.upload")
    for path, size in ((stale, 1234), (fresh, 10)):
        with open(path, "wb") as fh:
            fh.write(b"z" * size)
    long_ago = time.time() - 7 * 3600
    os.utime(stale, (long_ago, long_ago))

    sweep = storage_sweep()

    assert set(Blob.objects.values_list("pk", flat=True)) == {young.pk, dataset.blob_id, adapter.pk, checkpoint.pk}
    assert (sweep.blobs, sweep.blob_bytes, sweep.files, sweep.file_bytes) == (2, 8000, 1, 1234)
    assert not os.path.exists(stale) and os.path.exists(fresh)
    os.unlink(fresh)
    # Run as beat runs it, then on the dashboard.
    assert sweep_storage() == {"blobs": 0, "blob_bytes": 0, "files": 0, "file_bytes": 0}
    page = _admin_page(alice)
    assert "The storage sweep reclaimed" in page and "9.0\xa0KB" in page and StorageSweep.objects.count() == 2


def test_the_dashboard_says_when_the_sweep_has_not_run(alice):
    assert "The storage sweep\n    has not run yet" in _admin_page(alice)


def test_the_sweep_runs_on_beat_on_the_maintenance_queue():
    entry = next(e for e in settings.CELERY_BEAT_SCHEDULE.values() if e["task"] == "jobs.sweep_storage")
    assert entry["schedule"] == settings.STORAGE_SWEEP_SECONDS
    assert settings.CELERY_TASK_ROUTES["jobs.sweep_storage"] == {"queue": "maintenance"}
