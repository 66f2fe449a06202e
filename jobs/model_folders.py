"""A base model's folder on this worker's machine. The bundled Gemma is converted from its GGUF file once per
machine (each worker may have a disk of its own): by the maintenance worker when the studio starts, and by any
other worker that needs it before it has it. The conversion runs as a child process (`python -m peftcore
prepare-gemma`) so its ~1.5 GB of torch tensors leave with it."""

import logging
import subprocess
import sys
from pathlib import Path

from django.conf import settings

from peftcore import gemma_bundle
from peftcore.models import ModelRefError, resolve_model

from . import services
from .child_process import die_with_parent
from .models import BaseModel

log = logging.getLogger(__name__)

PREPARE_TIMEOUT = 1800  # seconds; about 90 on a 2-core machine


def convert_gemma() -> str | None:
    """Convert the bundled Gemma here; None when done, else why it failed."""
    try:
        out = subprocess.run(
            [sys.executable, "-m", "peftcore", "prepare-gemma", "--model-root", str(settings.MODEL_ROOT)],
            cwd=settings.BASE_DIR,
            capture_output=True,
            text=True,
            timeout=PREPARE_TIMEOUT,
            preexec_fn=die_with_parent,  # a stopped worker leaves no half-done conversion running
        )
    except subprocess.TimeoutExpired:
        return f"the conversion took over {PREPARE_TIMEOUT} s and was stopped"
    if out.returncode != 0:
        lines = [line for line in out.stderr.splitlines() if line.strip()]
        return "\n".join(lines[-5:]) or f"the conversion exited with status {out.returncode}"
    return None


def local_folder(model: BaseModel) -> Path:
    """resolve_model, converting the bundled Gemma first when this machine has not got it yet."""
    if model.source == gemma_bundle.MODEL_ID and gemma_bundle.state(settings.MODEL_ROOT) == gemma_bundle.PREPARING:
        if problem := convert_gemma():
            raise ModelRefError(f"could not prepare {model.name}: {problem}")
    return resolve_model(model.source, model_root=settings.MODEL_ROOT, revision=model.revision or None)


def prepare_base_model(model_id: int) -> str:
    model = BaseModel.objects.filter(pk=model_id).first()
    if model is None or model.source != gemma_bundle.MODEL_ID:
        return "nothing to prepare"
    if problem := convert_gemma():
        log.warning("preparing %s failed: %s", model.name, problem)
        services.base_model_set_state(model=model, state=BaseModel.State.FAILED, detail=problem)
        return "failed"
    services.base_model_set_state(model=model, state=BaseModel.State.READY)
    return "prepared"
