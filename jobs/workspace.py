"""What a training child needs on local disk (dataset, starting adapter, checkpoint, the spec), fetched from the
database into the worker's cache; and the zip of what it made."""

import zipfile
from pathlib import Path

from django.conf import settings

from .models import Artifact, Blob, Dataset, Job
from .storage import blob_write_to_path, unzip_safely


def materialise_dataset(dataset: Dataset) -> Path:
    """Cache dataset bytes by sha256, so a worker fetches each file from the database once."""
    folder = settings.WORKER_DIR / "datasets"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{dataset.sha256}.{dataset.format}"
    if not path.exists():
        blob_write_to_path(dataset.blob, path)
    return path


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


def materialise_checkpoint(job: Job, workdir: Path) -> str | None:
    """The job's last checkpoint (written by peftcore.checkpoints: safetensors and JSON, never a pickle)."""
    if job.checkpoint_id is None:
        return None
    return str(materialise_zip(Blob.objects.get(pk=job.checkpoint_id), workdir, "resume"))


def build_spec(job: Job, workdir: Path, model_path: Path) -> dict:
    return {
        "start_from": materialise_start(job, workdir),
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
