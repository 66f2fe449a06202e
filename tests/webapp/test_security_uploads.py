"""Uploads through the dataset page and POST /api/v1/datasets: more than one file is a clear 400 and stores
nothing; the temporary file Django streams a large upload into is gone after a stored upload, a refused file and
an oversized upload cut off midway."""

import pytest
from django.core.files import uploadhandler
from django.core.files.uploadedfile import SimpleUploadedFile, TemporaryUploadedFile
from django.test import Client, override_settings

from jobs.models import Blob, Dataset
from tests.conftest import api_client

MEMORY_LIMIT = 16 * 1024  # above this Django streams the upload into a temporary file
UPLOAD_LIMIT = 256 * 1024


def _entry(kind: str, alice):
    """(client, url, what a refused-as-too-large upload answers) for the page or the API."""
    if kind == "page":
        # As in production: the CSRF check reads the form (and so parses the upload) before the view does.
        client = Client(enforce_csrf_checks=True)
        client.force_login(alice)
        client.get("/datasets/")
        client.defaults["HTTP_X_CSRFTOKEN"] = client.cookies["csrftoken"].value  # as htmx sends it
        return client, "/datasets/", 400
    return api_client(alice), "/api/v1/datasets", 413


def _tsv(rows: int, *, bad_row: int | None = None) -> bytes:
    lines = ["sentence\tlabel"]
    for i in range(rows):
        label = "" if i == bad_row else str(i % 2)
        lines.append(f"review number {i}: the film was {'good' if i % 2 else 'bad'}, said reader {i * 7919}\t{label}")
    return ("\n".join(lines) + "\n").encode()


def _stored() -> tuple[int, int]:
    return Dataset.objects.count(), Blob.objects.count()


@pytest.fixture
def upload_temp_dir(tmp_path, monkeypatch):
    """FILE_UPLOAD_TEMP_DIR in a fresh folder, and the temporary files Django creates there, as it creates them."""
    folder = tmp_path / "uploads"
    folder.mkdir()
    created = []

    class Recorded(TemporaryUploadedFile):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            created.append(self.temporary_file_path())

    monkeypatch.setattr(uploadhandler, "TemporaryUploadedFile", Recorded)
    with override_settings(
        FILE_UPLOAD_TEMP_DIR=str(folder), FILE_UPLOAD_MAX_MEMORY_SIZE=MEMORY_LIMIT, MAX_UPLOAD_BYTES=UPLOAD_LIMIT
    ):
        yield folder, created


def _assert_cleaned(upload_temp_dir):
    folder, created = upload_temp_dir
    assert created and all(path.startswith(str(folder)) for path in created), created  # a temp file was used
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("kind", ["page", "api"])
def test_two_files_in_one_upload_are_a_clear_400_and_store_nothing(kind, alice):
    client, url, _ = _entry(kind, alice)
    before = _stored()
    response = client.post(
        url, {"name": "two", "file": [SimpleUploadedFile("a.tsv", _tsv(20)), SimpleUploadedFile("b.tsv", _tsv(20))]}
    )
    assert response.status_code == 400, response.content[:500]
    text = response.content.decode()
    assert "one file per upload" in text, text[:2000]
    if kind == "api":
        assert "one file per upload" in response.json()["detail"]
    assert _stored() == before


@pytest.mark.parametrize("kind", ["page", "api"])
def test_the_temporary_file_is_removed_after_a_stored_upload(kind, alice, upload_temp_dir):
    client, url, _ = _entry(kind, alice)
    data = _tsv(2000)
    assert MEMORY_LIMIT < len(data) < UPLOAD_LIMIT
    response = client.post(url, {"name": "big", "file": SimpleUploadedFile("big.tsv", data)})
    assert response.status_code in (201, 302), response.content[:500]
    assert Dataset.objects.get(name="big").size_bytes == len(data)
    _assert_cleaned(upload_temp_dir)


@pytest.mark.parametrize("kind", ["page", "api"])
def test_the_temporary_file_is_removed_after_a_refused_file(kind, alice, upload_temp_dir):
    client, url, _ = _entry(kind, alice)
    before = _stored()
    response = client.post(
        url, {"name": "bad", "label_column": "label", "file": SimpleUploadedFile("bad.tsv", _tsv(2000, bad_row=1500))}
    )
    assert response.status_code == 400 and b"nothing was stored" in response.content, response.content[:500]
    assert _stored() == before
    _assert_cleaned(upload_temp_dir)


@pytest.mark.parametrize("kind", ["page", "api"])
def test_the_temporary_file_is_removed_after_an_oversized_upload_is_cut_off(kind, alice, upload_temp_dir):
    client, url, refused = _entry(kind, alice)
    before = _stored()
    # Declared within the slack the size check allows for the form around the file, so the refusal comes while
    # the bytes stream into the temporary file, not from the declared length.
    data = _tsv(9000)[: UPLOAD_LIMIT + 32 * 1024]
    assert len(data) == UPLOAD_LIMIT + 32 * 1024
    response = client.post(url, {"name": "huge", "file": SimpleUploadedFile("huge.tsv", data)})
    assert response.status_code == refused, response.content[:500]
    assert f"the limit is {UPLOAD_LIMIT:,} bytes" in response.content.decode()
    assert _stored() == before
    _assert_cleaned(upload_temp_dir)
