"""The API's side of a large upload checked on a worker (202, then poll), and of deleting a dataset."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from jobs.dataset_checks import check_dataset
from jobs.models import Dataset
from tests.factories import job_for

pytestmark = pytest.mark.django_db


def test_a_large_upload_answers_202_and_the_dataset_says_when_it_is_ready(
    alice_api, bob_api, sst2_sample, settings, tiny_model
):
    settings.UPLOAD_CHECK_INLINE_BYTES = 1024
    upload = alice_api.post(
        "/api/v1/datasets", {"file": SimpleUploadedFile("big.tsv", sst2_sample.read_bytes()), "label_column": "label"}
    )
    assert upload.status_code == 202, upload.content
    body = upload.json()
    assert body["state"] == "checking" and body["rows"] == 0 and body["progress"] == 0.0
    url = f"/api/v1/datasets/{body['id']}"
    assert bob_api.get(url).status_code == 404 and bob_api.delete(url).status_code == 404
    job = alice_api.post(
        "/api/v1/jobs",
        {
            "dataset": body["id"],
            "base_model": tiny_model.pk,
            "method": "lora",
            "text_column": "sentence",
            "label_column": "label",
        },
        content_type="application/json",
    )
    assert job.status_code == 400 and "still being checked" in job.json()["errors"]["dataset"]

    check_dataset(body["id"])
    ready = alice_api.get(url).json()
    assert ready["state"] == "ready" and ready["rows"] == 200 and ready["stats"]["label_column"] == "label"

    small = alice_api.post("/api/v1/datasets", {"file": SimpleUploadedFile("small.tsv", b"text\tlabel\nok\t1\n")})
    assert small.status_code == 201 and small.json()["state"] == "ready"  # checked in the request, as before


def test_delete_answers_204_and_409_while_a_job_uses_the_dataset(alice, alice_api, dataset, sst2_sample, tiny_model):
    spare = alice_api.post("/api/v1/datasets", {"file": SimpleUploadedFile("spare.tsv", sst2_sample.read_bytes())})
    assert alice_api.delete(f"/api/v1/datasets/{spare.json()['id']}").status_code == 204
    assert not Dataset.objects.filter(pk=spare.json()["id"]).exists()
    job_for(alice, dataset, tiny_model)
    used = alice_api.delete(f"/api/v1/datasets/{dataset.pk}")
    assert used.status_code == 409 and "used by 1 job(s)" in used.json()["detail"]
