"""A succeeded job's adapter and report reach its own team only: bob gets 404, an anonymous client is refused."""

import io
import zipfile

import pytest
from django.test import Client

from jobs import runtime
from jobs.storage import blob_create_from_file
from tests.factories import dataset_from, job_for


def adapter_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("adapter_config.json", '{"peft_type": "LORA", "r": 8}')
        zf.writestr("adapter_model.safetensors", b"\x00\x01" * 512)
    return buffer.getvalue()


REPORT = {"eval_rows": 20, "labels": ["0", "1"], "confusion_matrix": [[9, 1], [3, 7]], "train_seconds": 12.5}


@pytest.fixture
def succeeded_job(alice, sst2_sample, tiny_model):
    dataset = dataset_from(alice, sst2_sample, name="alice-private-sst2", filename="a.tsv")
    job = job_for(alice, dataset, tiny_model)
    claimed = runtime.job_claim(job_id=job.pk, owner="test")
    zip_bytes = adapter_zip()
    blob = blob_create_from_file(io.BytesIO(zip_bytes))
    assert runtime.job_succeed(
        job=claimed, metrics={"accuracy": 0.8, "macro_f1": 0.79}, report=REPORT, adapter_blob=blob, filename="x.zip"
    )
    return job, zip_bytes


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def body(response) -> bytes:
    return b"".join(response.streaming_content)


def test_owner_downloads_the_exact_adapter_bytes(succeeded_job, alice, alice_api):
    job, zip_bytes = succeeded_job
    for response in (alice_api.get(f"/api/v1/jobs/{job.pk}/adapter"), logged_in(alice).get(f"/jobs/{job.pk}/adapter/")):
        assert response.status_code == 200
        assert response["Content-Disposition"] == 'attachment; filename="x.zip"'
        data = body(response)
        assert data == zip_bytes
        assert zipfile.ZipFile(io.BytesIO(data)).namelist() == ["adapter_config.json", "adapter_model.safetensors"]


def test_another_team_gets_404_for_the_adapter(succeeded_job, bob, bob_api):
    job, _ = succeeded_job
    assert bob_api.get(f"/api/v1/jobs/{job.pk}/adapter").status_code == 404
    assert logged_in(bob).get(f"/jobs/{job.pk}/adapter/").status_code == 404


def test_anonymous_client_gets_no_adapter(succeeded_job):
    job, _ = succeeded_job
    assert Client().get(f"/api/v1/jobs/{job.pk}/adapter").status_code == 401
    page = Client().get(f"/jobs/{job.pk}/adapter/")
    assert page.status_code == 302 and page["Location"].startswith("/login/")


def test_report_is_visible_to_its_team_only(succeeded_job, alice_api, bob_api):
    job, _ = succeeded_job
    assert bob_api.get(f"/api/v1/jobs/{job.pk}/report").status_code == 404
    response = alice_api.get(f"/api/v1/jobs/{job.pk}/report")
    assert response.status_code == 200 and response.json() == REPORT


def test_another_team_does_not_see_the_dataset_in_lists(succeeded_job, alice, bob, alice_api, bob_api):
    job, _ = succeeded_job
    assert "alice-private-sst2" in logged_in(alice).get("/datasets/").content.decode()
    assert [d["id"] for d in alice_api.get("/api/v1/datasets").json()] == [job.dataset_id]
    bobs_page = logged_in(bob).get("/datasets/")
    assert bobs_page.status_code == 200 and "alice-private-sst2" not in bobs_page.content.decode()
    assert bob_api.get("/api/v1/datasets").json() == []
