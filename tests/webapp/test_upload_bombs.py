"""An upload that expands is a 400 naming the limit it breaks, and nothing is stored (issue 18, row 1): a tiny
Parquet file holding one 20 MB string, through the API and through the dataset page."""

import pyarrow as pa
import pyarrow.parquet as pq
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from jobs.models import Blob, Dataset
from tests.webapp.test_api import upload


def _bomb(tmp_path):
    path = tmp_path / "bomb.parquet"
    pq.write_table(pa.table({"sentence": ["a" * (20 * 1024 * 1024)], "label": [1]}), path, compression="zstd")
    return path


def test_a_parquet_bomb_is_a_400_naming_the_limit_through_the_api(alice_api, tmp_path):
    response = upload(alice_api, _bomb(tmp_path), name="bomb.parquet")
    assert response.status_code == 400, response.content
    [error] = response.json()["errors"]
    assert "decompresses to 20.0 MB" in error["message"] and "4 MB a row" in error["message"]
    assert not Dataset.objects.exists() and not Blob.objects.exists()


def test_a_parquet_bomb_is_refused_on_the_dataset_page(alice, tmp_path):
    client = Client()
    client.force_login(alice)
    path = _bomb(tmp_path)
    response = client.post("/datasets/", {"file": SimpleUploadedFile("bomb.parquet", path.read_bytes())})
    assert response.status_code in (200, 400)
    assert "4 MB a row" in response.content.decode()
    assert not Dataset.objects.exists() and not Blob.objects.exists()
