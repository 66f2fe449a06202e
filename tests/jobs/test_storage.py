import io

import pytest

from jobs import storage
from jobs.models import Blob, BlobChunk


@pytest.mark.django_db
def test_blob_round_trip_spans_several_chunks(monkeypatch):
    monkeypatch.setattr(storage, "CHUNK_SIZE", 1000)
    payload = bytes(range(256)) * 20  # 5,120 bytes -> 6 chunks of at most 1,000
    blob = storage.blob_create_from_file(io.BytesIO(payload))
    assert blob.complete and blob.size == len(payload)
    assert BlobChunk.objects.filter(blob=blob).count() == 6
    assert b"".join(storage.blob_iter_chunks(blob)) == payload


@pytest.mark.django_db
def test_blob_with_a_corrupted_chunk_fails_its_checksum():
    blob = storage.blob_create_from_file(io.BytesIO(b"hello world"))
    BlobChunk.objects.filter(blob=blob).update(data=b"hello w0rld")
    with pytest.raises(storage.BlobIntegrityError):
        b"".join(storage.blob_iter_chunks(blob))


@pytest.mark.django_db
def test_a_failed_upload_leaves_no_blob():
    def chunks():
        yield b"first part"
        raise OSError("connection dropped")

    with pytest.raises(OSError):
        storage.blob_create_from_chunks(chunks())
    assert Blob.objects.count() == 0 and BlobChunk.objects.count() == 0


@pytest.mark.django_db
def test_empty_file_is_a_valid_blob(tmp_path):
    blob = storage.blob_create_from_file(io.BytesIO(b""))
    target = tmp_path / "out.bin"
    storage.blob_write_to_path(blob, target)
    assert (
        target.read_bytes() == b"" and blob.sha256 == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


@pytest.mark.parametrize("member", ["../escape.txt", "/etc/evil", "a/../../escape.txt"])
def test_adapter_zips_never_write_outside_their_folder(tmp_path, member):
    import zipfile

    from jobs.storage import unzip_safely

    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("adapter_config.json", "{}")
        zf.writestr(member, "x")
    with pytest.raises(ValueError, match="unsafe path"):
        unzip_safely(archive, tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "out").exists()
