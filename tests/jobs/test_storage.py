"""The blob store's suite, run against both stores: Postgres chunks (the embedded default) and an S3-compatible
object store (tests/conftest.py: use_s3)."""

import io

import pytest
from django.db import transaction

from jobs import object_store, storage
from jobs.models import Blob, BlobChunk


@pytest.fixture(params=["db", "s3"])
def store(request):
    """The store under test; for s3, the boto3 client of the test server."""
    if request.param == "s3":
        return request.getfixturevalue("use_s3")
    return None


def _objects(s3) -> list[str]:
    from django.conf import settings

    listing = s3.list_objects_v2(Bucket=settings.S3_BUCKET) if s3 is not None else {}
    return [item["Key"] for item in listing.get("Contents", [])]


def _corrupt(s3, blob) -> None:
    if s3 is None:
        BlobChunk.objects.filter(blob=blob).update(data=b"hello w0rld")
    else:
        from django.conf import settings

        s3.put_object(Bucket=settings.S3_BUCKET, Key=blob.key, Body=b"hello w0rld")


@pytest.mark.django_db
def test_blob_round_trip_spans_several_chunks_or_parts(store, monkeypatch):
    monkeypatch.setattr(storage, "CHUNK_SIZE", 1000)
    if store is None:
        payload = bytes(range(256)) * 20  # 5,120 bytes -> 6 chunks of at most 1,000
    else:
        payload = bytes(range(256)) * (2 * object_store.PART_SIZE // 256 + 3)  # two whole parts and a bit
    blob = storage.blob_create_from_file(io.BytesIO(payload))
    assert blob.complete and blob.size == len(payload)
    if store is None:
        assert BlobChunk.objects.filter(blob=blob).count() == 6 and blob.key == ""
    else:
        assert _objects(store) == [blob.key] and not BlobChunk.objects.exists()
    pieces = list(storage.blob_iter_chunks(blob))
    assert b"".join(pieces) == payload and max(map(len, pieces)) <= 1000  # streamed, never whole


@pytest.mark.django_db
def test_blob_with_corrupted_bytes_fails_its_checksum(store):
    blob = storage.blob_create_from_file(io.BytesIO(b"hello world"))
    _corrupt(store, blob)
    with pytest.raises(storage.BlobIntegrityError):
        b"".join(storage.blob_iter_chunks(blob))


@pytest.mark.django_db(transaction=True)
def test_a_failed_upload_leaves_no_blob_and_no_object(store):
    def chunks():
        yield b"x" * (object_store.PART_SIZE + 10)  # far enough for a multipart upload to have begun
        raise OSError("connection dropped")

    with pytest.raises(OSError):
        storage.blob_create_from_chunks(chunks())
    assert Blob.objects.count() == 0 and BlobChunk.objects.count() == 0
    if store is not None:
        from django.conf import settings

        assert _objects(store) == []
        assert not store.list_multipart_uploads(Bucket=settings.S3_BUCKET).get("Uploads")


@pytest.mark.django_db
def test_empty_file_is_a_valid_blob(store, tmp_path):
    blob = storage.blob_create_from_file(io.BytesIO(b""))
    target = tmp_path / "out.bin"
    storage.blob_write_to_path(blob, target)
    assert (
        target.read_bytes() == b"" and blob.sha256 == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


@pytest.mark.django_db(transaction=True)
def test_deleting_a_blob_deletes_its_bytes_once_committed(store):
    kept = storage.blob_create_from_file(io.BytesIO(b"kept"))
    gone = storage.blob_create_from_file(io.BytesIO(b"gone"))
    with pytest.raises(RuntimeError), transaction.atomic():
        Blob.objects.filter(pk=kept.pk).delete()
        raise RuntimeError("rolled back")
    Blob.objects.filter(pk=gone.pk).delete()
    assert list(Blob.objects.values_list("pk", flat=True)) == [kept.pk]
    if store is not None:
        assert _objects(store) == [kept.key]
    assert b"".join(storage.blob_iter_chunks(Blob.objects.get(pk=kept.pk))) == b"kept"


@pytest.mark.django_db
def test_a_blob_is_read_from_the_store_it_was_written_to(store, settings):
    blob = storage.blob_create_from_file(io.BytesIO(b"written before the switch"))
    settings.BLOB_STORE = "db" if store is not None else "s3"  # the setting changes; stored bytes stay readable
    assert b"".join(storage.blob_iter_chunks(blob)) == b"written before the switch"


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
