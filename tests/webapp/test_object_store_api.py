"""The studio on the S3-compatible store: an upload's bytes land there, a worker reads them back, the adapter
download streams from there, and deleting the dataset deletes its object."""

import io
import zipfile

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile

from jobs.models import Artifact, Dataset, Job
from jobs.storage import blob_create_from_chunks, blob_write_to_path
from tests.factories import job_row

pytestmark = pytest.mark.django_db(transaction=True)


def _objects(s3) -> list[str]:
    return [item["Key"] for item in s3.list_objects_v2(Bucket=settings.S3_BUCKET).get("Contents", [])]


def test_datasets_and_adapters_live_in_the_object_store(use_s3, alice_api, bob_api, sst2_sample, tiny_model, tmp_path):
    upload = alice_api.post("/api/v1/datasets", {"file": SimpleUploadedFile("s.tsv", sst2_sample.read_bytes())})
    assert upload.status_code == 201, upload.content
    dataset = Dataset.objects.select_related("blob").get(pk=upload.json()["id"])
    assert _objects(use_s3) == [dataset.blob.key]
    blob_write_to_path(dataset.blob, tmp_path / "fetched.tsv")  # what a worker does before training
    assert (tmp_path / "fetched.tsv").read_bytes() == sst2_sample.read_bytes()

    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("adapter_config.json", "{}")
    blob = blob_create_from_chunks([archive.getvalue()])
    job = job_row(dataset, tiny_model, status=Job.Status.SUCCEEDED)
    Artifact.objects.create(
        job=job, kind=Artifact.Kind.ADAPTER, filename="a.zip", blob=blob, size_bytes=blob.size, sha256=blob.sha256
    )
    download = alice_api.get(f"/api/v1/jobs/{job.pk}/adapter")
    assert download.status_code == 200 and download.streaming
    assert b"".join(download.streaming_content) == archive.getvalue()
    assert bob_api.get(f"/api/v1/jobs/{job.pk}/adapter").status_code == 404

    spare = alice_api.post("/api/v1/datasets", {"file": SimpleUploadedFile("t.tsv", sst2_sample.read_bytes())})
    key = Dataset.objects.get(pk=spare.json()["id"]).blob.key
    assert key in _objects(use_s3)
    assert alice_api.delete(f"/api/v1/datasets/{spare.json()['id']}").status_code == 204
    assert key not in _objects(use_s3) and dataset.blob.key in _objects(use_s3)
