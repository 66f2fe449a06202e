"""The job's log, kept with the job and downloadable (issue 20, item 3): each attempt's story (phases, evaluations,
checkpoints, the error if any) and the training process's own output, appended after the earlier attempts'."""

import itertools
import logging
from pathlib import Path

from django.db import transaction

from ..models import Artifact, Job
from ..storage import blob_create_from_chunks, blob_delete, blob_iter_chunks

log = logging.getLogger(__name__)

STDERR_KEEP_BYTES = 1024 * 1024  # of a very chatty run, the end, where the error is


def attempt_text(*, job: Job, worker: str, lines: list[str], stderr_path: Path | None) -> bytes:
    header = f"=== attempt {job.attempt} on {worker or 'a worker'} (times are UTC) ===\n"
    body = "\n".join(lines) + "\n" if lines else "(the training process said nothing)\n"
    out = (header + body).encode()
    if stderr_path is not None and stderr_path.is_file():
        size = stderr_path.stat().st_size
        with open(stderr_path, "rb") as fh:
            if size > STDERR_KEEP_BYTES:
                fh.seek(size - STDERR_KEEP_BYTES)
                out += f"--- the training process's output: its last {STDERR_KEEP_BYTES:,} of {size:,} bytes ---\n".encode()
            else:
                out += b"--- the training process's output ---\n"
            out += fh.read()
    return out + b"\n"


def job_log_append(*, job: Job, text: bytes) -> None:
    """Add an attempt's text to the job's LOG artefact; skipped when the job has moved on to another attempt (this
    runner lost it), so a stale worker never writes over the current one's log. The new bytes are stored before
    the row lock is taken (a slow store must not hold the job's row), streamed from the old log."""
    old = Artifact.objects.filter(job=job, kind=Artifact.Kind.LOG).select_related("blob").first()
    blob = blob_create_from_chunks(itertools.chain([] if old is None else blob_iter_chunks(old.blob), [text]))
    with transaction.atomic():
        current = Job.objects.select_for_update().filter(pk=job.pk, attempt=job.attempt).first()
        replaced = Artifact.objects.filter(job=job, kind=Artifact.Kind.LOG).select_related("blob").first()
        if current is None or (replaced is not None and (old is None or replaced.pk != old.pk)):
            blob_delete(blob)  # taken over, or another writer got there first: keep theirs
            return
        if replaced is not None:
            replaced.delete()
            blob_delete(replaced.blob)
        Artifact.objects.create(
            job=job,
            kind=Artifact.Kind.LOG,
            filename=f"job-{job.pk}.log",
            blob=blob,
            size_bytes=blob.size,
            sha256=blob.sha256,
        )
