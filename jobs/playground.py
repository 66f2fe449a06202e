"""The playground on the worker side: unzip a job's adapter once (cached by its sha256), keep the last few loaded
models in memory, and store each run's result: a classifier's label probabilities, or the text a generation (SFT,
seq2seq, preference) adapter writes, beside another adapter's and the base model's when asked. Runs in the maintenance worker, never the web process."""

from __future__ import annotations

import logging
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path

from django.conf import settings

from . import services
from .model_folders import local_folder
from .models import Artifact, Job, PlaygroundRun
from .storage import blob_write_to_path, unzip_safely

log = logging.getLogger(__name__)

KEEP_LOADED = 2  # models held in memory; the next one evicts the least recently used
MAX_NEW_TOKENS = 64  # tokens a generation adapter may write per playground text
_loaded: OrderedDict = OrderedDict()
_lock = threading.Lock()


def _unzip_once(artifact: Artifact) -> Path:
    folder = settings.WORKER_DIR / "adapters" / artifact.sha256
    if folder.is_dir():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent) as tmp:
        archive, partial = Path(tmp) / "adapter.zip", Path(tmp) / "adapter"
        blob_write_to_path(artifact.blob, archive)
        unzip_safely(archive, partial)
        try:
            partial.rename(folder)  # atomic: a concurrent unzip of the same adapter loses the race harmlessly
        except OSError:
            if not folder.is_dir():
                raise
    return folder


def _cached(model_path: Path, adapter_dir: Path, load, group: str | None = None):
    """load(model_path, adapter_dir), or the copy still in memory; one LRU whatever the adapter's task. group: an
    adapter with a task per group, loaded routed to that group's task (a copy per group)."""
    key = (str(model_path), str(adapter_dir), group)
    with _lock:
        if key in _loaded:
            _loaded.move_to_end(key)
            return _loaded[key]
    loaded = load(model_path, adapter_dir) if group is None else load(model_path, adapter_dir, group)
    with _lock:
        _loaded[key] = loaded
        while len(_loaded) > KEEP_LOADED:
            _loaded.popitem(last=False)
    return loaded


def _predictor(model_path: Path, adapter_dir: Path, group: str | None = None):
    from peftcore.groups import load_group_predictor
    from peftcore.predict import load_predictor

    return _cached(model_path, adapter_dir, load_group_predictor if group is not None else load_predictor, group)


def _adapter_dir(job) -> Path:
    artifact = Artifact.objects.filter(job=job, kind=Artifact.Kind.ADAPTER).select_related("blob").first()
    if artifact is None:
        raise ValueError(f"job #{job.pk} has no stored adapter")
    return _unzip_once(artifact)


def _max_length(job) -> int:
    used = getattr(job, "report", None) and job.report.data.get("params", {}).get("max_length")
    return used or job.params.get("max_length") or 128  # None: chosen at training, which never ran


def predict(run_id: int) -> str:
    from peftcore.predict import predict as answer

    run = PlaygroundRun.objects.select_related("job__base_model", "job__report").filter(pk=run_id).first()
    if run is None:
        return "no such run"
    job = run.job
    try:
        model_path = local_folder(job.base_model)
        options = run.options or {}
        sampling = dict(
            max_new_tokens=options.get("max_new_tokens") or MAX_NEW_TOKENS,
            temperature=options.get("temperature", 0.0),
            top_p=options.get("top_p", 1.0),
        )
        fixed = {}  # partial texts already final: the other adapter's, written first
        compared = None
        if other_id := options.get("compare_job"):
            other = Job.objects.select_related("report").get(pk=other_id, team_id=job.team_id)
            compared = answer(
                _predictor(model_path, _adapter_dir(other)),
                run.texts,
                max_length=_max_length(other),
                **sampling,
                on_partial=lambda p: services.playground_run_partial(
                    run=run, partial={"compare_generations": p["generations"]}
                ),
            )
            fixed = {"compare_generations": [c["generation"] for c in compared]}
        # The folder records the task it was trained for (classification if it predates the record), so it
        # decides, not job.task: an adapter loads only as the task it was saved for.
        predictor = _predictor(model_path, _adapter_dir(job), options.get("group"))
        answers = answer(
            predictor,
            run.texts,
            max_length=_max_length(job),
            **sampling,
            compare_base=bool(options.get("compare_base")),
            on_partial=lambda partial: services.playground_run_partial(run=run, partial={**fixed, **partial}),
        )
        for mine, theirs in zip(answers, compared or []):
            mine["compare_generation"] = theirs["generation"]
        result = {"generations" if predictor.task.generative else "predictions": answers}
    except Exception as exc:  # whatever breaks, the run must end, or the page would poll forever
        log.warning("playground run %s of job %s failed: %s", run.pk, job.pk, exc)
        result = {"error": f"could not run the adapter: {exc}"}
    services.playground_run_set(run=run, result=result)
    return "predicted"


def forget_loaded() -> None:
    """Drop the models held in memory (tests; a worker low on memory)."""
    with _lock:
        _loaded.clear()
