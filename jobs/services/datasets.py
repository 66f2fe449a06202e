"""Writes for datasets: an upload inspected, checked against the quota, and stored; a large one stored first and
checked by the maintenance worker (jobs/dataset_checks.py), which records the outcome here."""

import logging
import os
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from peftcore.data import inspect_file
from peftcore.formats import DataError, detect_format
from teams.audit import audit_record
from teams.models import Team

from .. import dispatch, quotas
from ..errors import ValidationFailed
from ..models import Dataset, Job
from ..storage import blob_create_from_file, blob_delete

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
    size = os.path.getsize(path)
    asked = {"text_column": text_column or None, "label_column": label_column or None}
    if size > settings.UPLOAD_CHECK_INLINE_BYTES:  # stored now, checked on a worker: the request returns sooner
        return _store(team=team, user=user, name=name, filename=filename, path=path, fmt=fmt, size=size, asked=asked)
    report = inspect_file(path, fmt=fmt, **asked)
    if not report["ok"]:
        count = report.get("error_count", len(report["errors"]))
        raise ValidationFailed(
            f"'{filename}' has {count} error(s); nothing was stored. Fix them and upload again.",
            errors=report["errors"],
        )
    return _store(
        team=team, user=user, name=name, filename=filename, path=path, fmt=fmt, size=size, report=report, asked=asked
    )


def _store(*, team, user, name, filename, path, fmt, size, asked, report=None) -> Dataset:
    """Store the bytes and the dataset row: READY with the report's findings, or CHECKING (no report yet) with
    the columns asked for, and the worker told once the row is committed."""
    if error := quotas.storage_error(team, size):  # before writing: refuse early, store nothing
        raise ValidationFailed(error, errors={"quota": error})
    with open(path, "rb") as fh:
        blob = blob_create_from_file(fh)
    try:  # from here on, any failure takes the stored bytes with it: no orphan for the sweep to find
        found = _findings(report, **asked) if report is not None else {"rows": 0, "stats": {"asked": asked}}
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
                    format=report["format"] if report is not None else fmt,
                    blob=blob,
                    size_bytes=blob.size,
                    sha256=blob.sha256,
                    state=Dataset.State.READY if report is not None else Dataset.State.CHECKING,
                    state_at=None if report is not None else timezone.now(),
                    progress=None if report is not None else 0.0,
                    **found,
                )
                if report is None:
                    dispatch.publish_on_commit(dispatch.CHECK_DATASET, dataset.pk)
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


def _findings(report: dict, *, text_column: str | None, label_column: str | None) -> dict:
    """The Dataset fields a clean report fills."""
    stats = {"empty_values": report.get("empty_values", {}), "warnings": report.get("warnings", [])}
    if report.get("labels"):
        stats["labels"] = report["labels"]
        stats["label_column"] = label_column
    if text_column:
        stats["text_column"] = text_column
    return {"rows": report["rows"], "columns": report["columns"], "preview": report["preview"], "stats": stats}


def dataset_check_progress(*, dataset_id: int, rows: int, progress: float | None) -> None:
    """The worker's check has read `rows` rows (`progress` of the file, when known): shown on the dataset page."""
    update = {"rows": rows, "state_at": timezone.now()}
    if progress is not None:
        update["progress"] = progress
    Dataset.objects.filter(pk=dataset_id, state=Dataset.State.CHECKING).update(**update)


def dataset_check_finish(*, dataset_id: int, report: dict) -> Dataset | None:
    """Record the worker's check: READY with what it found, or INVALID with the errors (the bytes stay until the
    dataset is deleted, so the page can show which rows to fix). None when the dataset is gone or already checked
    (a second delivery of the same message)."""
    with transaction.atomic():
        dataset = Dataset.objects.select_for_update().filter(pk=dataset_id, state=Dataset.State.CHECKING).first()
        if dataset is None:
            return None
        asked = dataset.stats.get("asked") or {}
        dataset.progress, dataset.state_at = None, timezone.now()
        if report["ok"]:
            for field, value in _findings(report, **asked).items():
                setattr(dataset, field, value)
            dataset.format, dataset.state = report["format"] or dataset.format, Dataset.State.READY
        elif (previous := dataset.stats.get("previous")) is not None:
            # columns picked again for a file already checked: the file stays as it was, with why the new
            # columns were not taken (the page shows it)
            count = report.get("error_count", len(report["errors"]))
            dataset.state, dataset.rows = Dataset.State.READY, dataset.stats.get("previous_rows", dataset.rows)
            dataset.stats = {
                **previous,
                "column_errors": report["errors"],
                "column_error_detail": f"with the columns picked last the file has {count} error(s); nothing was changed",
            }
        else:
            count = report.get("error_count", len(report["errors"]))
            dataset.state = Dataset.State.INVALID
            dataset.columns, dataset.rows = report.get("columns") or [], report.get("rows") or 0
            dataset.stats = {
                "asked": asked,
                "errors": report["errors"],
                "error_count": count,
                "detail": f"'{dataset.filename}' has {count} error(s); fix them and upload it again",
            }
        dataset.save()
    return dataset


def dataset_delete(*, actor_user, dataset: Dataset) -> None:
    """Delete a dataset and its bytes; refused while a job was trained on it or evaluates on it (the job's report
    and its resume need the rows)."""
    with transaction.atomic():
        # the team's lock, as job_create takes it: no job can be created on the dataset between the count and the
        # delete
        Team.objects.select_for_update().filter(pk=dataset.team_id).first()
        used = Job.objects.filter(Q(dataset=dataset) | Q(eval_dataset=dataset)).count()
        if used:
            raise ValidationFailed(
                f"'{dataset.name}' is used by {used} job(s); delete those jobs first, or keep the dataset",
                errors={"dataset": "in use"},
            )
        blob = dataset.blob
        audit_record(
            team_id=dataset.team_id,
            user=actor_user,
            action="dataset.delete",
            target=f"dataset {dataset.pk}",
            name=dataset.name,
            bytes=dataset.size_bytes,
        )
        dataset.delete()
        blob_delete(blob)


def dataset_set_columns(*, dataset: Dataset, user, text_column: str, label_column: str) -> Dataset:
    """Name (or change) the text and label columns after upload, picked from the file's own columns: the label
    counts and warnings are worked out again for them. A small file is read again here; a large one goes back to
    the maintenance worker (CHECKING). Columns with errors (empty labels, say) are refused, and nothing changes."""
    for column in (text_column, label_column):
        if column and column not in dataset.columns:
            raise ValidationFailed(
                f"'{column}' is not a column of '{dataset.name}'; its columns are: {', '.join(dataset.columns)}",
                errors={"columns": column},
            )
    if dataset.state == Dataset.State.CHECKING:
        raise ValidationFailed("the file is still being checked; pick the columns once it is done", errors={})
    asked = {"text_column": text_column or None, "label_column": label_column or None}
    if dataset.size_bytes > settings.UPLOAD_CHECK_INLINE_BYTES:
        kept = {k: v for k, v in dataset.stats.items() if k not in ("asked", "previous", "previous_rows")}
        recheck = {"asked": asked}
        if dataset.state == Dataset.State.READY:  # a failed re-check must leave the dataset as it is
            recheck.update(previous=kept, previous_rows=dataset.rows)
        Dataset.objects.filter(pk=dataset.pk).update(
            state=Dataset.State.CHECKING, progress=0.0, state_at=timezone.now(), stats=recheck
        )
        dispatch.publish_on_commit(dispatch.CHECK_DATASET, dataset.pk)
    else:
        report = _inspect_stored(dataset, asked)
        if not report["ok"]:
            count = report.get("error_count", len(report["errors"]))
            raise ValidationFailed(
                f"with these columns '{dataset.filename}' has {count} error(s); nothing was changed",
                errors=report["errors"],
            )
        found = _findings(report, **asked)
        Dataset.objects.filter(pk=dataset.pk).update(stats=found["stats"])
    audit_record(team_id=dataset.team_id, user=user, action="dataset.columns", target=f"dataset {dataset.pk}", **asked)
    dataset.refresh_from_db()
    return dataset


def _inspect_stored(dataset: Dataset, asked: dict) -> dict:
    import tempfile

    from ..storage import blob_write_to_path

    with tempfile.TemporaryDirectory(prefix="studio-columns-", dir=settings.FILE_UPLOAD_TEMP_DIR) as tmp:
        path = Path(tmp) / f"data.{dataset.format}"
        blob_write_to_path(dataset.blob, path)
        return inspect_file(path, fmt=dataset.format, **asked)


MAX_LABEL_NAME = 100


def dataset_set_label_names(*, dataset: Dataset, user, names: dict[str, str]) -> Dataset:
    """Give the counted labels names ("1" -> "positive") shown in reports, compare and the playground; an empty
    name keeps the label as it is. The data and the trained adapters keep the labels themselves."""
    labels = dataset.stats.get("labels") or {}
    if not labels:
        raise ValidationFailed("pick the label column first: its labels are counted, then they can be named", errors={})
    unknown = [label for label in names if label not in labels]
    if unknown:
        raise ValidationFailed(f"'{unknown[0]}' is not a label of '{dataset.name}'", errors={"labels": unknown[0]})
    cleaned = {label: " ".join(str(name).split())[:MAX_LABEL_NAME] for label, name in names.items()}
    cleaned = {label: name for label, name in cleaned.items() if name and name != label}
    if any("\x00" in name for name in cleaned.values()):
        raise ValidationFailed("a label name cannot contain NUL characters", errors={"labels": "NUL"})
    taken = [name for name in cleaned.values() if list(cleaned.values()).count(name) > 1 or name in labels]
    if taken:
        raise ValidationFailed(f"two labels would both be called '{taken[0]}'; give each its own name", errors={})
    Dataset.objects.filter(pk=dataset.pk).update(stats={**dataset.stats, "label_names": cleaned})
    audit_record(team_id=dataset.team_id, user=user, action="dataset.labels", target=f"dataset {dataset.pk}")
    dataset.refresh_from_db()
    return dataset
