"""Counts each method's trainable parameters for a base model, in a child process (torch stays out of the
web process and out of the worker's own memory), and stores them on the model for the job form and API."""

import json
import logging
import subprocess
import sys
import tempfile
from pathlib import Path

from django.conf import settings

from peftcore.formats import DataError
from peftcore.models import ModelRefError

from . import services
from .child_process import die_with_parent
from .model_folders import local_folder
from .models import BaseModel, TokenStats, TrainableCount

log = logging.getLogger(__name__)


def profile_base_model(model_id: int) -> str:
    model = BaseModel.objects.filter(pk=model_id).first()
    if model is None:
        return "no such model"
    try:
        folder = local_folder(model)
    except ModelRefError as exc:
        log.warning("model %s cannot be profiled: %s", model.pk, exc)
        return "model not found"
    out = subprocess.run(
        [sys.executable, "-m", "peftcore", "methods", "--json", "--model", str(folder)],
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=die_with_parent,  # a worker stopped mid-profile leaves no counting child behind
    )
    if out.returncode != 0:
        log.warning("profiling model %s failed: %s", model.pk, out.stderr[-2000:])
        return "failed"
    services.base_model_set_profile(model=model, rows=json.loads(out.stdout))
    return "profiled"


def count_trainable(count_id: int) -> str:
    """One live count for the job form, in this (maintenance) worker's own process: after the first count
    torch is imported and each further count takes milliseconds on the meta device, where a child process
    would take seconds to start."""
    from peftcore.counting import count_trainable as count_on_meta
    from peftcore.methods._common import MethodBuildError

    count = TrainableCount.objects.select_related("base_model").filter(pk=count_id).first()
    if count is None:
        return "no such count"
    model = count.base_model
    try:
        folder = local_folder(model)
        result = count_on_meta(folder, count.method, count.params, "text-classification")
    except (ModelRefError, MethodBuildError, ValueError) as exc:
        result = {"refused": str(exc)}
    services.trainable_count_set(count=count, result=result)
    return "counted"


def count_tokens(stats_id: int) -> str:
    """Token lengths of a dataset column under a base model's tokenizer, for the pre-flight report: the dataset
    is written from its blob to a temporary file and read row by row; no model weights are loaded."""
    from peftcore.token_lengths import column_texts, length_histogram, model_token_limit, sft_lengths

    from .storage import blob_write_to_path

    stats = TokenStats.objects.select_related("dataset__blob", "base_model").filter(pk=stats_id).first()
    if stats is None:
        return "no such request"
    model, dataset = stats.base_model, stats.dataset
    try:
        folder = local_folder(model)
        with tempfile.TemporaryDirectory(prefix="studio-tokens-") as tmp:
            path = Path(tmp) / f"data.{dataset.format}"
            blob_write_to_path(dataset.blob, path)
            if stats.options:  # SFT examples as the template builds them
                result = sft_lengths(folder, path, dataset.format, stats.options)
            else:
                histogram = length_histogram(folder, column_texts(path, dataset.format, stats.column))
                result = {"histogram": {str(k): v for k, v in sorted(histogram.items())}}
        result["model_limit"] = model_token_limit(folder)
    except Exception as exc:  # whatever breaks, the row must end, or the form would poll forever
        log.warning("token lengths of dataset %s on model %s failed: %s", dataset.pk, model.pk, exc)
        result = {"error": f"could not count tokens with {model.name}'s tokenizer: {exc}"}
        # The data or the model being wrong stays wrong; anything else (memory, disk, database) may pass.
        if not isinstance(exc, DataError | ModelRefError | ValueError | KeyError):
            previous = stats.result if isinstance(stats.result, dict) else {}
            result.update(retry=True, attempts=previous.get("attempts", 0) + 1)
    services.token_stats_set(stats=stats, result=result)
    return "counted"
