"""What a training child needs on local disk (dataset, starting adapter, checkpoint, the spec), fetched from the
database into the worker's cache; and the zip of what it made."""

import os
import time
import zipfile
from pathlib import Path

from django.conf import settings

from peftcore.errors import BAD_PARAMS, TrainingError

from .models import Artifact, Blob, Dataset, Job
from .storage import blob_write_to_path, unzip_safely


def materialise_dataset(dataset: Dataset) -> Path:
    """Cache dataset bytes by sha256, so a worker fetches each file from the database once; the cache keeps to
    WORKER_DATASET_CACHE_BYTES by evicting the least recently used files."""
    folder = settings.WORKER_DIR / "datasets"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{dataset.sha256}.{dataset.format}"
    if path.exists():
        os.utime(path)  # used now: eviction goes by last use
    else:
        blob_write_to_path(dataset.blob, path)
    evict_least_recent(folder, keep=path, limit=settings.WORKER_DATASET_CACHE_BYTES)
    return path


# A file used this recently may belong to a job another worker on this host is starting: never evicted.
EVICT_MIN_IDLE_SECONDS = 3600


def evict_least_recent(folder: Path, *, keep: Path, limit: int) -> list[Path]:
    """Delete the least recently used files until the folder holds at most `limit` bytes; returns what went."""
    entries = []
    for item in folder.iterdir():
        try:
            if item.is_file() and not item.name.endswith(".part"):  # .part: a download in flight
                info = item.stat()
                entries.append((info.st_mtime, info.st_size, item))
        except FileNotFoundError:
            continue
    total, evicted, now = sum(size for _, size, _ in entries), [], time.time()
    for mtime, size, item in sorted(entries):
        if total <= limit or now - mtime < EVICT_MIN_IDLE_SECONDS:
            break
        if item == keep:
            continue
        item.unlink(missing_ok=True)
        total -= size
        evicted.append(item)
    return evicted


def materialise_zip(blob, workdir: Path, name: str) -> Path:
    archive, folder = workdir / f"{name}.zip", workdir / name
    blob_write_to_path(blob, archive)
    unzip_safely(archive, folder)
    archive.unlink()
    return folder


def materialise_start(job: Job, workdir: Path) -> dict | None:
    """The adapter a job starts from, unzipped from its blob into the job's folder."""
    if job.start_from_id is None:
        return None
    artifact = Artifact.objects.get(job_id=job.start_from_id, kind=Artifact.Kind.ADAPTER)
    return {"adapter_dir": str(materialise_zip(artifact.blob, workdir, "start")), "mode": job.start_mode or "continue"}


def materialise_combine(job: Job, workdir: Path) -> dict | None:
    """A combination job's parents: each adapter unzipped into the job's folder, with the recipe."""
    if not job.combine:
        return None
    recipe = job.combine
    blobs = dict(
        Artifact.objects.filter(job_id__in=recipe["parents"], kind=Artifact.Kind.ADAPTER).values_list("job_id", "blob")
    )
    missing = [f"#{pk}" for pk in recipe["parents"] if pk not in blobs]
    if missing:
        raise TrainingError(BAD_PARAMS, f"job(s) {', '.join(missing)} no longer have an adapter to combine")
    adapters = [
        str(materialise_zip(Blob.objects.get(pk=blobs[pk]), workdir, f"parent-{pk}")) for pk in recipe["parents"]
    ]
    return {**recipe, "adapters": adapters}


def materialise_checkpoint(job: Job, workdir: Path) -> str | None:
    """The job's last checkpoint (written by peftcore.checkpoints: safetensors and JSON, never a pickle)."""
    if job.checkpoint_id is None:
        return None
    return str(materialise_zip(Blob.objects.get(pk=job.checkpoint_id), workdir, "resume"))


def build_spec(job: Job, workdir: Path, model_path: Path) -> dict:
    return {
        "start_from": materialise_start(job, workdir),
        "combine": materialise_combine(job, workdir),
        "group_column": job.group_column or None,
        "group_shared": job.group_shared,
        "resume_from": materialise_checkpoint(job, workdir),
        "task": job.task,
        "model_path": str(model_path),
        "method": job.method,
        "method_params": job.method_params,
        "train_file": str(materialise_dataset(job.dataset)),
        "train_format": job.dataset.format,
        "eval_file": str(materialise_dataset(job.eval_dataset)) if job.eval_dataset else None,
        "eval_format": job.eval_dataset.format if job.eval_dataset else None,
        "text_column": job.text_column,
        "label_column": job.label_column,
        "input_column": job.input_column or None,
        "messages_column": job.messages_column or None,
        "template": job.template or None,
        "params": job.params,
        "choices": job.choices,
        "micro_batch_size": job.micro_batch_size,
        "output_dir": str(workdir / "out"),
        "checkpoint_dir": str(workdir / "checkpoints"),
        "checkpoint_every_seconds": settings.CHECKPOINT_EVERY_SECONDS or None,
        "checkpoint_every_steps": settings.CHECKPOINT_EVERY_STEPS or None,
        "threads": settings.TRAIN_THREADS,
        "processes": settings.TRAIN_PROCESSES,
        "metadata": {
            "job_id": job.pk,
            "base_model": job.base_model.source,
            "dataset_name": job.dataset.name,
            "dataset_sha256": job.dataset.sha256,
            "eval_dataset_sha256": job.eval_dataset.sha256 if job.eval_dataset else None,
        },
    }


def zip_folder(folder: Path, target: Path, compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(target, "w", compression=compression) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(folder).as_posix())
    return target
