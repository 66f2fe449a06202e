"""A large upload's row-by-row check, on the maintenance worker: the stored bytes fetched to a scratch file in
constant memory, inspected as an upload is inside the request (peftcore.data.inspect_file), progress written at
most once a second, and the outcome recorded by services. A check whose worker died is asked for again by the
next look at the dataset (dataset_check_ask_again)."""

import logging
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from peftcore.data import inspect_file

from . import dispatch, services
from .models import Dataset
from .storage import blob_write_to_path

log = logging.getLogger(__name__)

PROGRESS_SECONDS = 1.0
# A check that has not written progress for this long lost its worker (progress comes every 20,000 rows).
STALE_SECONDS = 300


def check_dataset(dataset_id: int) -> str:
    dataset = Dataset.objects.select_related("blob").filter(pk=dataset_id, state=Dataset.State.CHECKING).first()
    if dataset is None:
        return "nothing to do"
    asked = dataset.stats.get("asked") or {}
    folder = settings.WORKER_DIR / "checks"
    folder.mkdir(parents=True, exist_ok=True)
    last = [0.0]

    def progress(rows: int, share: float | None) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_SECONDS:
            last[0] = now
            services.dataset_check_progress(dataset_id=dataset_id, rows=rows, progress=share)

    services.dataset_check_progress(dataset_id=dataset_id, rows=0, progress=0.0)  # alive: not asked for again
    try:
        with tempfile.TemporaryDirectory(prefix="studio-check-", dir=folder) as tmp:
            path = Path(tmp) / f"upload.{dataset.format}"
            blob_write_to_path(dataset.blob, path)
            services.dataset_check_progress(dataset_id=dataset_id, rows=0, progress=0.0)
            report = inspect_file(path, fmt=dataset.format, progress=progress, **asked)
    except Exception as exc:  # the bytes could not be fetched: the check must end, or the page waits for ever
        log.warning("the check of dataset %s failed: %s", dataset_id, exc)
        message = f"the stored file could not be read back: {exc}"
        report = {"ok": False, "errors": [{"row": None, "message": message}], "error_count": 1, "format": None}
    services.dataset_check_finish(dataset_id=dataset_id, report=report)
    return "checked"


def dataset_check_ask_again(dataset: Dataset) -> None:
    """Ask a worker again for a check whose worker went silent (killed, or its message lost)."""
    if dataset.state != Dataset.State.CHECKING or dataset.state_at is None:
        return
    if timezone.now() - dataset.state_at > timedelta(seconds=STALE_SECONDS):
        updated = Dataset.objects.filter(pk=dataset.pk, state_at=dataset.state_at).update(state_at=timezone.now())
        if updated:  # one viewer asks, not every poll of every viewer
            dispatch.publish(dispatch.CHECK_DATASET, dataset.pk)
