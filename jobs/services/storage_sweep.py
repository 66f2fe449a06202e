"""The storage sweep: blobs nothing points at (an upload or a checkpoint whose writer died between storing the
bytes and recording them, a half-written blob) and temporary upload files left by a killed web server are
removed once they are older than a grace period, and what was reclaimed is recorded for the dashboard.

The grace period keeps the sweep away from work in flight: a blob is recorded within seconds of being written,
and an upload's temporary file lives for the length of its request.
"""

import time
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db.models import ProtectedError, Sum
from django.db.models.functions import Length
from django.utils import timezone

from ..models import Artifact, Blob, BlobChunk, Dataset, Job, StorageSweep


def orphan_blobs(*, older_than: timedelta):
    """Blobs older than the grace period that no dataset, artefact or checkpoint points at."""
    cutoff = timezone.now() - older_than
    return (
        Blob.objects.filter(created_at__lt=cutoff)
        .exclude(pk__in=Dataset.objects.values("blob_id"))
        .exclude(pk__in=Artifact.objects.values("blob_id"))
        .exclude(pk__in=Job.objects.filter(checkpoint__isnull=False).values("checkpoint_id"))
    )


def upload_files_sweep(folder: Path | None = None, older_than: timedelta | None = None) -> tuple[int, int]:
    """Remove files in the upload folder older than the grace period: (files, bytes)."""
    folder = Path(settings.FILE_UPLOAD_TEMP_DIR) if folder is None else folder
    older_than = older_than or timedelta(seconds=settings.STORAGE_SWEEP_GRACE_SECONDS)
    if not folder.is_dir():
        return 0, 0
    cutoff, files, size = time.time() - older_than.total_seconds(), 0, 0
    for path in folder.iterdir():
        try:
            info = path.stat()
            if path.is_file() and info.st_mtime < cutoff:
                path.unlink()
                files, size = files + 1, size + info.st_size
        except FileNotFoundError:  # its request finished meanwhile
            continue
    return files, size


def storage_sweep(*, grace_seconds: float | None = None) -> StorageSweep:
    older_than = timedelta(seconds=settings.STORAGE_SWEEP_GRACE_SECONDS if grace_seconds is None else grace_seconds)
    blobs, blob_bytes = 0, 0
    for blob_id in list(orphan_blobs(older_than=older_than).values_list("pk", flat=True)):
        # The bytes actually held: a half-written blob's size field is still 0.
        size = BlobChunk.objects.filter(blob_id=blob_id).aggregate(n=Sum(Length("data")))["n"] or 0
        size = size or Blob.objects.filter(pk=blob_id).values_list("size", flat=True).first() or 0
        try:
            Blob.objects.filter(pk=blob_id).delete()
        except ProtectedError:  # recorded since the query above: not an orphan after all
            continue
        blobs, blob_bytes = blobs + 1, blob_bytes + size
    files, file_bytes = upload_files_sweep(Path(settings.FILE_UPLOAD_TEMP_DIR), older_than)
    return StorageSweep.objects.create(blobs=blobs, blob_bytes=blob_bytes, files=files, file_bytes=file_bytes)
