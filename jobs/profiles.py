"""Counts each method's trainable parameters for a base model, in a child process (torch stays out of the
web process and out of the worker's own memory), and stores them on the model for the job form and API."""

import json
import logging
import subprocess
import sys

from django.conf import settings

from peftcore.models import ModelRefError, resolve_model

from . import services
from .models import BaseModel, TrainableCount

log = logging.getLogger(__name__)


def profile_base_model(model_id: int) -> str:
    model = BaseModel.objects.filter(pk=model_id).first()
    if model is None:
        return "no such model"
    try:
        folder = resolve_model(model.source, model_root=settings.MODEL_ROOT, revision=model.revision or None)
    except ModelRefError as exc:
        log.warning("model %s cannot be profiled: %s", model.pk, exc)
        return "model not found"
    out = subprocess.run([sys.executable, "-m", "peftcore", "methods", "--json", "--model", str(folder)],
                         cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        log.warning("profiling model %s failed: %s", model.pk, out.stderr[-2000:])
        return "failed"
    services.base_model_set_profile(model=model, rows=json.loads(out.stdout))
    return "profiled"


def count_trainable(count_id: int) -> str:
    """One live count for the job form, in this (maintenance) worker's own process: after the first count
    torch is imported and each further count takes milliseconds on the meta device, where a child process
    would take seconds to start."""
    from peftcore.methods import count_trainable as count_on_meta
    from peftcore.methods._common import MethodBuildError

    count = TrainableCount.objects.select_related("base_model").filter(pk=count_id).first()
    if count is None:
        return "no such count"
    model = count.base_model
    try:
        folder = resolve_model(model.source, model_root=settings.MODEL_ROOT, revision=model.revision or None)
        result = count_on_meta(folder, count.method, count.params, "text-classification")
    except (ModelRefError, MethodBuildError, ValueError) as exc:
        result = {"refused": str(exc)}
    services.trainable_count_set(count=count, result=result)
    return "counted"
