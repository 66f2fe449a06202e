"""Merged export through the studio: asked for on the job page (once), built by the worker task's code with the
real `peftcore merge` child process, stored as the job's artifact and streamed as a zip holding one safetensors
model, its card and an Ollama Modelfile. Another team gets 404; a method that cannot fold says why."""

import io
import zipfile

from django.test import Client

from jobs.merged_exports import export_merged
from jobs.models import Artifact, Job, MergedExport


def test_a_merged_export_is_built_once_and_downloaded(
    alice, bob_api, alice_api, sft_job, django_capture_on_commit_callbacks
):
    client = Client()
    client.force_login(alice)
    page = client.get(f"/jobs/{sft_job.pk}/").content.decode()
    assert 'id="export-merged"' in page
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        first = client.post(f"/jobs/{sft_job.pk}/merged/")
        again = alice_api.post(f"/api/v1/jobs/{sft_job.pk}/merged")
    assert first.status_code == 200 and 'id="merged-progress"' in first.content.decode()
    assert again.status_code == 202 and again.json()["status"] == "queued"
    assert len(callbacks) == 1 and MergedExport.objects.count() == 1  # asked twice, queued once
    assert alice_api.get(f"/api/v1/jobs/{sft_job.pk}/merged/download").status_code == 404  # not built yet

    export = MergedExport.objects.get()
    assert export_merged(export.pk) == "exported"
    assert export_merged(export.pk) == "nothing to do"  # a repeated message does no work
    assert alice_api.get(f"/api/v1/jobs/{sft_job.pk}/merged").json()["status"] == "done"
    assert 'id="download-merged"' in client.get(f"/jobs/{sft_job.pk}/merged/").content.decode()

    response = client.get(f"/jobs/{sft_job.pk}/merged/download/")
    assert response.status_code == 200 and response.streaming
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    names = set(archive.namelist())
    assert {"model.safetensors", "config.json", "Modelfile", "README.md", "tokenizer.json"} <= names
    assert not any(name.startswith("adapter_") for name in names)
    assert "<start_of_turn>user" in archive.read("Modelfile").decode()
    artifact = Artifact.objects.get(job=sft_job, kind=Artifact.Kind.MERGED)
    assert artifact.size_bytes == len(
        b"".join(alice_api.get(f"/api/v1/jobs/{sft_job.pk}/merged/download").streaming_content)
    )

    assert bob_api.get(f"/api/v1/jobs/{sft_job.pk}/merged").status_code == 404
    assert bob_api.post(f"/api/v1/jobs/{sft_job.pk}/merged").status_code == 404
    assert bob_api.get(f"/api/v1/jobs/{sft_job.pk}/merged/download").status_code == 404


def test_methods_that_cannot_fold_and_unfinished_jobs_are_told_why(alice_api, sft_job):
    Job.objects.filter(pk=sft_job.pk).update(method="prompt_tuning")
    refused = alice_api.post(f"/api/v1/jobs/{sft_job.pk}/merged")
    assert refused.status_code == 400 and "cannot be folded" in refused.json()["detail"]
    Job.objects.filter(pk=sft_job.pk).update(method="lora", status=Job.Status.RUNNING)
    running = alice_api.post(f"/api/v1/jobs/{sft_job.pk}/merged")
    assert running.status_code == 400 and "only a succeeded job" in running.json()["detail"]
    assert not MergedExport.objects.exists()
