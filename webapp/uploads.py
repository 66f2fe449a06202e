"""Helpers shared by the browser and the API for streamed uploads and downloads."""

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.http import StreamingHttpResponse

from jobs.models import Artifact
from jobs.storage import blob_iter_chunks


class UploadTooLarge(Exception):
    pass


@contextmanager
def uploaded_file_path(uploaded):
    """A path to the uploaded bytes on disk: Django already streamed large uploads to a temporary file."""
    if uploaded.size > settings.MAX_UPLOAD_BYTES:
        raise UploadTooLarge(f"the file is {uploaded.size:,} bytes; the limit is {settings.MAX_UPLOAD_BYTES:,} bytes")
    if hasattr(uploaded, "temporary_file_path"):
        yield Path(uploaded.temporary_file_path())
        return
    suffix = Path(uploaded.name or "").suffix
    fd, name = tempfile.mkstemp(suffix=suffix, dir=settings.FILE_UPLOAD_TEMP_DIR)  # with Django's own
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in uploaded.chunks():
                out.write(chunk)
        yield Path(name)
    finally:
        os.unlink(name)


def artifact_response(artifact: Artifact) -> StreamingHttpResponse:
    """Stream an artefact from the blob store in constant memory (a log as text the browser shows)."""
    text = artifact.kind == Artifact.Kind.LOG
    content_type = "text/plain; charset=utf-8" if text else "application/zip"
    response = StreamingHttpResponse(blob_iter_chunks(artifact.blob), content_type=content_type)
    response["Content-Length"] = str(artifact.size_bytes)
    response["Content-Disposition"] = f'{"inline" if text else "attachment"}; filename="{artifact.filename}"'
    response["X-Content-SHA256"] = artifact.sha256
    return response
