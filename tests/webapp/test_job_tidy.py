"""Tidying jobs (issue 20, item 7): rename, delete an ended job with what it stored, and a new job with the same
settings; from the page and the API, never across teams."""

import io
from urllib.parse import parse_qs, urlparse

import pytest
from django.test import Client

from jobs.models import Artifact, Blob, Job, MetricPoint
from jobs.storage import blob_create_from_file
from tests.factories import SST2_COLUMNS, job_for, job_row

pytestmark = pytest.mark.django_db


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_rename_from_the_page_and_the_api(alice, bob, alice_api, bob_api, dataset, tiny_model):
    job = job_for(alice, dataset, tiny_model)
    _client(alice).post(f"/jobs/{job.pk}/rename/", {"name": "  first   try "})
    assert Job.objects.get(pk=job.pk).name == "first try"
    empty = _client(alice).post(f"/jobs/{job.pk}/rename/", {"name": "  "}, follow=True)
    assert "give the job a name" in empty.content.decode() and Job.objects.get(pk=job.pk).name == "first try"
    renamed = alice_api.patch(f"/api/v1/jobs/{job.pk}", {"name": "second"}, content_type="application/json")
    assert renamed.status_code == 200 and renamed.json()["name"] == "second"
    assert bob_api.patch(f"/api/v1/jobs/{job.pk}", {"name": "x"}, content_type="application/json").status_code == 404
    assert _client(bob).post(f"/jobs/{job.pk}/rename/", {"name": "x"}).status_code == 404
    assert Job.objects.get(pk=job.pk).name == "second"


def test_delete_takes_the_adapter_and_metrics_and_refuses_live_or_depended_on_jobs(
    alice, alice_api, bob_api, dataset, tiny_model
):
    queued = job_for(alice, dataset, tiny_model)
    refused = alice_api.delete(f"/api/v1/jobs/{queued.pk}")
    assert refused.status_code == 409 and "cancel it first" in refused.json()["detail"]

    done = job_row(dataset, tiny_model, status=Job.Status.SUCCEEDED)
    blob = blob_create_from_file(io.BytesIO(b"adapter bytes"))
    Artifact.objects.create(job=done, kind="adapter", filename="a.zip", blob=blob, size_bytes=blob.size, sha256="")
    MetricPoint.objects.create(job=done, step=1, name="loss", value=1.0)
    child = job_row(dataset, tiny_model, status=Job.Status.FAILED, start_from=done)
    depended = alice_api.delete(f"/api/v1/jobs/{done.pk}")
    assert depended.status_code == 409 and f"#{child.pk}" in depended.json()["detail"]

    assert bob_api.delete(f"/api/v1/jobs/{child.pk}").status_code == 404
    page = _client(alice).post(f"/jobs/{child.pk}/delete/")
    assert page.status_code == 302 and not Job.objects.filter(pk=child.pk).exists()
    assert alice_api.delete(f"/api/v1/jobs/{done.pk}").status_code == 204
    assert not Job.objects.filter(pk=done.pk).exists() and not Blob.objects.filter(pk=blob.pk).exists()
    assert not MetricPoint.objects.exists() and not Artifact.objects.exists()


def test_a_new_job_with_these_settings_keeps_what_was_typed_and_rechooses_the_rest(alice, bob, dataset, tiny_model):
    job = job_for(
        alice,
        dataset,
        tiny_model,
        name="tuned",
        params={"learning_rate": 0.002},
        method_params={"r": 16},
    )
    assert "params.epochs" in job.choices  # the studio chose the epochs
    response = _client(alice).get(f"/jobs/{job.pk}/again/")
    assert response.status_code == 302
    query = {key: values[0] for key, values in parse_qs(urlparse(response["Location"]).query).items()}
    assert query["dataset"] == str(dataset.pk) and query["base_model"] == str(tiny_model.pk)
    assert query["method"] == "lora" and query["text_column"] == SST2_COLUMNS["text_column"]
    assert query["p_learning_rate"] == "0.002" and query["m_r"] == "16" and query["name"] == "tuned (again)"
    assert "p_epochs" not in query and "m_lora_alpha" not in query  # chosen by the studio: chosen again
    form = _client(alice).get(response["Location"]).content.decode()
    assert 'value="0.002"' in form and 'value="tuned (again)"' in form
    assert _client(bob).get(f"/jobs/{job.pk}/again/").status_code == 404


def test_a_jobs_settings_are_kept_as_a_preset_the_job_form_offers(alice, bob, dataset, tiny_model):
    from jobs.models import JobPreset

    job = job_for(alice, dataset, tiny_model, params={"learning_rate": 0.002}, method_params={"r": 16})
    client = _client(alice)
    client.post(f"/jobs/{job.pk}/preset/", {"name": "  strong   LoRA "})
    preset = JobPreset.objects.get()
    assert preset.name == "strong LoRA" and preset.query["m_r"] == 16 and preset.query["p_learning_rate"] == 0.002
    assert "p_epochs" not in preset.query  # the studio's own choice is made again for the new data
    form = client.get("/jobs/new/").content.decode()
    assert 'id="job-presets"' in form and f'href="/presets/{preset.pk}/"' in form and "strong LoRA" in form
    opened = client.get(f"/presets/{preset.pk}/")
    assert opened.status_code == 302 and "m_r=16" in opened["Location"]
    assert 'value="0.002"' in client.get(opened["Location"]).content.decode()
    client.post(f"/jobs/{job.pk}/preset/", {"name": "strong LoRA"})  # the same name again: replaced, not doubled
    assert JobPreset.objects.count() == 1

    other = _client(bob)
    assert other.get(f"/presets/{preset.pk}/").status_code == 404
    assert other.post(f"/presets/{preset.pk}/delete/").status_code == 404
    assert "strong LoRA" not in other.get("/jobs/new/").content.decode()
    client.post(f"/presets/{preset.pk}/delete/")
    assert not JobPreset.objects.exists()
