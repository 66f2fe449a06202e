"""Writes for datasets: an upload inspected, checked against the quota, and stored."""

import logging
import os
from pathlib import Path

from django.db import transaction

from peftcore.data import inspect_file
from peftcore.formats import DataError, detect_format
from teams.audit import audit_record
from teams.models import Team

from .. import quotas
from ..errors import ValidationFailed
from ..models import Dataset
from ..storage import blob_create_from_file

log = logging.getLogger(__name__)


def dataset_create(
    *,
    team,
    user,
    name: str,
    path: str | os.PathLike,
    filename: str,
    text_column: str | None = None,
    label_column: str | None = None,
) -> Dataset:
    """Inspect an uploaded file and store it; a file with errors stores nothing."""
    # Postgres refuses NUL in text; refused here, before the blob is written, so none is left behind.
    if "\x00" in f"{name}{filename}{text_column or ''}{label_column or ''}":
        message = "the name, the file name and the column names cannot contain NUL (\\u0000) characters"
        raise ValidationFailed(message, errors=[{"row": None, "message": message}])
    try:
        fmt = detect_format(filename)  # the user's file name: the temporary file's name may differ
    except DataError as exc:
        raise ValidationFailed(
            f"'{filename}': unsupported file type; {exc}", errors=[{"row": None, "message": str(exc)}]
        ) from None
    report = inspect_file(path, fmt=fmt, text_column=text_column or None, label_column=label_column or None)
    if not report["ok"]:
        count = report.get("error_count", len(report["errors"]))
        raise ValidationFailed(
            f"'{filename}' has {count} error(s); nothing was stored. Fix them and upload again.",
            errors=report["errors"],
        )
    size = os.path.getsize(path)
    if error := quotas.storage_error(team, size):  # before writing: refuse early, store nothing
        raise ValidationFailed(error, errors={"quota": error})
    with open(path, "rb") as fh:
        blob = blob_create_from_file(fh)
    try:  # from here on, any failure takes the stored bytes with it: no orphan for the sweep to find
        stats = {"empty_values": report.get("empty_values", {}), "warnings": report.get("warnings", [])}
        if report.get("labels"):
            stats["labels"] = report["labels"]
            stats["label_column"] = label_column
        if text_column:
            stats["text_column"] = text_column
        with transaction.atomic():
            locked = Team.objects.select_for_update().filter(pk=team.pk).first()  # again, now uploads are serialised
            if locked is None:  # the team was deleted while the bytes were stored
                error = "this team has been deleted; nothing was stored"
                dataset = None
            elif error := quotas.storage_error(locked, blob.size):
                dataset = None
            else:
                dataset = Dataset.objects.create(
                    team=team,
                    created_by=user,
                    name=(name or Path(filename).stem)[:200],
                    filename=filename[:255],
                    format=report["format"],
                    blob=blob,
                    size_bytes=blob.size,
                    sha256=blob.sha256,
                    rows=report["rows"],
                    columns=report["columns"],
                    preview=report["preview"],
                    stats=stats,
                )
                audit_record(
                    team_id=team.pk,
                    user=user,
                    action="dataset.upload",
                    target=f"dataset {dataset.pk}",
                    name=dataset.name,
                    rows=dataset.rows,
                    bytes=dataset.size_bytes,
                )
    except BaseException:
        try:
            blob.delete()
        except Exception:  # the database itself may be what failed: the sweep removes it later
            log.warning("could not delete blob %s after a failed upload", blob.pk, exc_info=True)
        raise
    if dataset is None:
        blob.delete()
        raise ValidationFailed(error, errors={"quota": error})
    return dataset
