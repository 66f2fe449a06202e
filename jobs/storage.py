"""The blob store: bytes in the database, chunked, streamed both ways, sha256 checked; or, with BLOB_STORE=s3,
bytes in an S3-compatible object store (jobs/object_store.py) under the same Blob rows.

Nothing here holds a whole blob in memory; each chunk is written or read by its own small query (or request), so
uploads and downloads run in constant memory whatever their size. A blob is read from where it was written, so
changing BLOB_STORE leaves what is stored readable.
"""

import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from django.conf import settings
from django.db import transaction

from . import object_store
from .models import Blob, BlobChunk

CHUNK_SIZE = 1024 * 1024


class BlobIntegrityError(Exception):
    pass


def _chunks_of(fileobj: BinaryIO) -> Iterator[bytes]:
    while chunk := fileobj.read(CHUNK_SIZE):
        yield chunk


def blob_create_from_chunks(chunks: Iterable[bytes]) -> Blob:
    """Store byte chunks of any size as one blob; a failure part way leaves no blob behind."""
    if settings.BLOB_STORE == "s3":
        return _create_in_object_store(chunks)
    blob = Blob.objects.create(sha256="", size=0)
    digest, size, index, pending = hashlib.sha256(), 0, 0, bytearray()
    try:
        for piece in chunks:
            digest.update(piece)
            size += len(piece)
            pending += piece
            while len(pending) >= CHUNK_SIZE:
                BlobChunk.objects.create(blob=blob, index=index, data=bytes(pending[:CHUNK_SIZE]))
                del pending[:CHUNK_SIZE]
                index += 1
        if pending or index == 0:
            BlobChunk.objects.create(blob=blob, index=index, data=bytes(pending))
        Blob.objects.filter(pk=blob.pk).update(sha256=digest.hexdigest(), size=size, complete=True)
    except BaseException:
        with transaction.atomic():
            blob.delete()
        raise
    blob.refresh_from_db()
    return blob


def _create_in_object_store(chunks: Iterable[bytes]) -> Blob:
    # The row first, so the sweep finds an object whose writer died (its row stays incomplete).
    blob = Blob.objects.create(sha256="", size=0, key=object_store.new_key())
    digest, size = hashlib.sha256(), 0

    def seen(piece: bytes) -> None:
        nonlocal size
        digest.update(piece)
        size += len(piece)

    try:
        object_store.write(blob.key, chunks, seen)
        Blob.objects.filter(pk=blob.pk).update(sha256=digest.hexdigest(), size=size, complete=True)
    except BaseException:
        with transaction.atomic():
            blob.delete()  # and its object, once committed (jobs/signals.py)
        raise
    blob.refresh_from_db()
    return blob


def blob_create_from_file(fileobj: BinaryIO) -> Blob:
    return blob_create_from_chunks(_chunks_of(fileobj))


def blob_iter_chunks(blob: Blob) -> Iterator[bytes]:
    """Yield the blob's bytes chunk by chunk, verifying its sha256 at the end."""
    if not blob.complete:
        raise BlobIntegrityError(f"blob {blob.pk} is incomplete")
    digest = hashlib.sha256()
    for data in _stored_chunks(blob):
        digest.update(data)
        yield data
    if digest.hexdigest() != blob.sha256:
        raise BlobIntegrityError(f"blob {blob.pk} failed its sha256 check")


def _stored_chunks(blob: Blob) -> Iterator[bytes]:
    if blob.key:
        yield from object_store.read(blob.key, CHUNK_SIZE)
        return
    indexes = list(BlobChunk.objects.filter(blob=blob).order_by("index").values_list("index", flat=True))
    for index in indexes:
        yield bytes(BlobChunk.objects.filter(blob=blob, index=index).values_list("data", flat=True).get())


def blob_write_to_path(blob: Blob, path: str | os.PathLike) -> None:
    """Materialise a blob as a file; written beside the target and renamed, so readers never see half."""
    # A unique temporary name: two workers on one host may fetch the same dataset at once.
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in blob_iter_chunks(blob):
                out.write(chunk)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def unzip_safely(archive: str | os.PathLike, folder: str | os.PathLike) -> None:
    """Extract one of our own adapter zips, refusing any member that would land outside the folder."""
    import zipfile
    from pathlib import PurePosixPath

    with zipfile.ZipFile(archive) as zf:
        for member in zf.namelist():
            if member.startswith("/") or ".." in PurePosixPath(member).parts:
                raise ValueError(f"unsafe path in the adapter archive: {member!r}")
        zf.extractall(folder)


def blob_delete(blob: Blob) -> None:
    blob.delete()
