"""The job's log (jobs/services/job_logs.py): every attempt's text appended after the earlier ones', a runner that
lost the job writes nothing, a huge output keeps its end, and only the job's team reads it."""

import pytest
from django.test import Client

from jobs.models import Artifact, Blob, Job
from jobs.services import job_logs
from jobs.storage import blob_iter_chunks
from tests.factories import job_row

pytestmark = pytest.mark.django_db


def _text(job) -> str:
    artifact = Artifact.objects.get(job=job, kind=Artifact.Kind.LOG)
    return b"".join(blob_iter_chunks(artifact.blob)).decode()


def test_attempts_append_and_a_stale_runner_writes_nothing(alice, bob, dataset, tiny_model, tmp_path, monkeypatch):
    job = job_row(dataset, tiny_model, status=Job.Status.FAILED, attempt=1)
    stderr = tmp_path / "train.log"
    stderr.write_text("Traceback: something broke\n")
    first = job_logs.attempt_text(job=job, worker="w1", lines=["12:00:00  loading the model"], stderr_path=stderr)
    job_logs.job_log_append(job=job, text=first)
    Job.objects.filter(pk=job.pk).update(attempt=2)
    job.attempt = 2
    job_logs.job_log_append(job=job, text=job_logs.attempt_text(job=job, worker="w2", lines=[], stderr_path=None))
    text = _text(job)
    assert text.index("=== attempt 1 on w1") < text.index("loading the model") < text.index("=== attempt 2 on w2")
    assert "Traceback: something broke" in text and "(the training process said nothing)" in text
    assert Artifact.objects.filter(job=job, kind=Artifact.Kind.LOG).count() == 1
    assert Blob.objects.exclude(pk=dataset.blob_id).count() == 1  # the first attempt's text was replaced

    stale = Job.objects.get(pk=job.pk)
    stale.attempt = 1  # a runner that lost the job to attempt 2
    job_logs.job_log_append(job=stale, text=b"late words")
    assert "late words" not in _text(job)

    client = Client()
    client.force_login(alice)
    page = client.get(f"/jobs/{job.pk}/log/")
    assert page["Content-Type"].startswith("text/plain") and b"attempt 2" in b"".join(page.streaming_content)
    assert 'id="job-log"' in client.get(f"/jobs/{job.pk}/").content.decode()
    client.force_login(bob)
    assert client.get(f"/jobs/{job.pk}/log/").status_code == 404


def test_a_huge_output_keeps_its_end(dataset, tiny_model, tmp_path, monkeypatch):
    monkeypatch.setattr(job_logs, "STDERR_KEEP_BYTES", 100)
    job = job_row(dataset, tiny_model, status=Job.Status.FAILED, attempt=1)
    stderr = tmp_path / "train.log"
    stderr.write_text("x" * 1000 + "THE END\n")
    text = job_logs.attempt_text(job=job, worker="w", lines=[], stderr_path=stderr).decode()
    assert "THE END" in text and "its last 100 of 1,008 bytes" in text and text.count("x") < 150
