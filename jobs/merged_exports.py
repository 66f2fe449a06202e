"""Builds a merged export on the maintenance worker: the job's adapter and its base model on this machine, folded
by `python -m peftcore merge` in a child process (the model's memory leaves with it), zipped without compression
(safetensors barely compress) and stored as the job's MERGED artifact."""

import logging
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from django.conf import settings

from peftcore.models import ModelRefError

from . import services
from .child_process import die_with_parent
from .model_folders import local_folder
from .models import Artifact, MergedExport
from .storage import blob_create_from_file, blob_write_to_path, unzip_safely
from .workspace import zip_folder

log = logging.getLogger(__name__)

MERGE_TIMEOUT = 3600


def export_merged(export_id: int) -> str:
    export = MergedExport.objects.select_related("job__base_model").filter(pk=export_id).first()
    if export is None or not services.merged_export_start(export=export):
        return "nothing to do"
    job = export.job
    try:
        with tempfile.TemporaryDirectory(prefix="studio-merge-", dir=_scratch()) as tmp:
            folder = _merge(job, Path(tmp))
            archive = zip_folder(folder, Path(tmp) / "merged.zip", compression=zipfile.ZIP_STORED)
            with open(archive, "rb") as fh:
                blob = blob_create_from_file(fh)
        name = re.sub(r"[^A-Za-z0-9._-]+", "-", job.name or f"job-{job.pk}").strip("-") or f"job-{job.pk}"
        services.merged_export_finish(export=export, blob=blob, filename=f"{name}-merged.zip")
        return "exported"
    except Exception as exc:  # whatever breaks, the export must end, or the page would wait for ever
        log.warning("merged export of job %s failed: %s", job.pk, exc)
        services.merged_export_finish(export=export, message=str(exc) or type(exc).__name__)
        return "failed"


def _scratch() -> Path:
    folder = settings.WORKER_DIR / "merges"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _merge(job, tmp: Path) -> Path:
    artifact = Artifact.objects.select_related("blob").get(job=job, kind=Artifact.Kind.ADAPTER)
    adapter = tmp / "adapter"
    blob_write_to_path(artifact.blob, tmp / "adapter.zip")
    unzip_safely(tmp / "adapter.zip", adapter)
    try:
        model_path = local_folder(job.base_model)
    except ModelRefError as exc:
        raise RuntimeError(str(exc)) from None
    out = tmp / "merged"
    command = [sys.executable, "-m", "peftcore", "merge", "--model", str(model_path), "--adapter", str(adapter)]
    command += ["--out", str(out), "--base-name", job.base_model.name, "--job-name", job.name or f"job {job.pk}"]
    done = subprocess.run(
        command,
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=MERGE_TIMEOUT,
        preexec_fn=die_with_parent,
    )
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise RuntimeError(lines[-1] if lines else f"the merge exited with status {done.returncode}")
    return out
