"""Team B cannot see, cancel or download team A's datasets and jobs: every such request is a 404."""

import pytest
from django.test import Client

from jobs.models import Job
from tests.factories import dataset_from, job_for


@pytest.fixture
def alice_job(alice, sst2_sample, tiny_model):
    return job_for(alice, dataset_from(alice, sst2_sample, name="a"), tiny_model)


def test_api_of_another_team_is_404(alice_job, bob_api):
    job, dataset = alice_job, alice_job.dataset
    assert bob_api.get(f"/api/v1/jobs/{job.pk}").status_code == 404
    assert bob_api.post(f"/api/v1/jobs/{job.pk}/cancel").status_code == 404
    assert bob_api.get(f"/api/v1/jobs/{job.pk}/adapter").status_code == 404
    assert bob_api.get(f"/api/v1/datasets/{dataset.pk}").status_code == 404
    assert bob_api.get("/api/v1/jobs").json() == [] and bob_api.get("/api/v1/datasets").json() == []
    assert Job.objects.get(pk=job.pk).status == Job.Status.QUEUED


def test_bob_cannot_train_on_alices_dataset(alice_job, bob_api, tiny_model):
    response = bob_api.post(
        "/api/v1/jobs",
        {
            "dataset": alice_job.dataset_id,
            "base_model": tiny_model.pk,
            "method": "lora",
            "text_column": "sentence",
            "label_column": "label",
        },
        content_type="application/json",
    )
    assert response.status_code == 400 and response.json()["errors"] == {"dataset": "not found"}


def test_pages_of_another_team_are_404(alice_job, bob):
    client = Client()
    client.force_login(bob)
    job = alice_job
    for url in (
        f"/jobs/{job.pk}/",
        f"/jobs/{job.pk}/status/",
        f"/jobs/{job.pk}/adapter/",
        f"/datasets/{job.dataset_id}/",
    ):
        assert client.get(url).status_code == 404, url
    assert client.post(f"/jobs/{job.pk}/cancel/").status_code == 404
    assert Job.objects.get(pk=job.pk).status == Job.Status.QUEUED
    assert job.name not in client.get("/jobs/").content.decode()


def test_anonymous_users_are_sent_to_login(alice_job):
    response = Client().get(f"/jobs/{alice_job.pk}/")
    assert response.status_code == 302 and "/login/" in response["Location"]
