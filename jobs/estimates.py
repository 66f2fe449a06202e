"""Before a job is submitted: how many steps, how long and how much memory it will take, and how many jobs wait
before it (issue 20, item 1). Reads only; a handful of queries whatever the number of jobs.

Time comes from the team's own finished jobs on the same base model (their measured training tokens per second,
the same method's first), else from a rough rule (tokens per second inversely proportional to the model's size,
its constant measured on this project's CPU runs). Memory likewise: the peak a finished job of the same model and
method measured, scaled by batch x length for the activations, else weights + optimizer + activations from the
model's config. Each estimate says which it is."""

import math
import statistics
from dataclasses import dataclass

from django.db.models import Count, F, FloatField, IntegerField
from django.db.models.fields.json import KT
from django.db.models.functions import Cast

from peftcore.estimates import run_rate, tokens_per_row, train_steps, work_tokens

from .models import BaseModel, EvalReport, Job
from .online_workers import workers_online

# Training tokens per second x model parameters: measured with LoRA on all-MiniLM-L6-v2 (22.7 M parameters),
# SST-2, 2 CPU cores (bench/quality.py): about 380 tokens/s, so ~8.6e9. A GPU is taken as 100x a 2-core CPU.
CPU_TOKENS_PARAMS = 8.6e9
GPU_SPEEDUP = 100
CALIBRATION_JOBS = 20  # the team's most recent finished jobs on the model looked at


@dataclass
class Estimate:
    steps: int
    seconds: float | None
    seconds_basis: str
    memory_bytes: int | None
    memory_basis: str
    queued_ahead: int
    running: int
    device: str
    warnings: list[str]


def job_estimate(
    *,
    team_id: int,
    base_model: BaseModel,
    method: str,
    params: dict,
    train_rows: int,
    eval_rows: int,
    histogram: dict | None,
    config: dict | None,
) -> Estimate | None:
    """None until the batch size and the epochs are known; time and memory stay None (said why) until the max
    length is too."""
    batch, epochs, length = params.get("batch_size"), params.get("epochs"), params.get("max_length")
    if not (batch and epochs and train_rows):
        return None
    steps = train_steps(train_rows, batch, epochs)
    queued, running = _queue()
    if not length:
        waiting = "once the texts' token lengths are counted (a few seconds)"
        return Estimate(steps, None, waiting, None, waiting, queued, running, "", [])
    row_tokens = tokens_per_row(length, histogram)
    work = work_tokens(steps=steps, batch_size=batch, row_tokens=row_tokens, epochs=epochs, eval_rows=eval_rows)
    workers = [w for w in workers_online() if "training" in (w.info.get("queues") or [])]
    device = "cuda" if any(w.info.get("gpus") for w in workers) else "cpu"
    past = _past_runs(team_id, base_model.pk, device)
    setup = _setup(params.get("precision"), params.get("quantize"))
    same = [run for run in past if run["method"] == method and _setup(run["precision"], run["quantize"]) == setup]
    rates = [rate for run in (same or past) if (rate := _rate(run))]
    if rates:
        rate = statistics.median(rates)
        kind = f"{method} " if same else ""
        basis = f"from {len(rates)} finished {kind}job(s) of your team on this model ({rate:,.0f} tokens/s)"
    else:
        total = _total_params(base_model, method, config)
        rate = CPU_TOKENS_PARAMS / total * (GPU_SPEEDUP if device == "cuda" else 1) if total else None
        basis = "a rough rule for this model's size (no finished job on it to measure from yet)"
    seconds = work / rate if rate else None
    memory, memory_basis = _memory(same, params, config, base_model, method)
    warnings = []
    free = [_free_bytes(w) for w in workers]
    free = [f for f in free if f is not None]
    if memory and free and memory > max(free):
        warnings.append(
            f"This job needs about {_gb(memory)} of memory; the most any online worker has free is {_gb(max(free))}. "
            "Lower the batch size or the max length"
            + (", or train the model in 4 bits (QLoRA)" if device == "cuda" else "")
            + "."
        )
    return Estimate(steps, seconds, basis, memory, memory_basis, queued, running, device, warnings)


def _past_runs(team_id: int, model_id: int, device: str) -> list[dict]:
    """The efficiency figures of the team's latest succeeded jobs on the model and device: one query, only the
    keys it needs out of each report."""
    rows = (
        EvalReport.objects.filter(
            job__team_id=team_id,
            job__base_model_id=model_id,
            job__status=Job.Status.SUCCEEDED,
            data__device=device,
            job__combine__isnull=True,  # a combination trains nothing: no rate to learn from
        )
        .order_by("-job__finished_at")
        .annotate(
            train_seconds=Cast(KT("data__train_seconds"), FloatField()),
            train_tokens=Cast(KT("data__efficiency__train_tokens"), FloatField()),
            steps=Cast(KT("data__steps"), IntegerField()),
            train_rows=Cast(KT("data__train_rows"), IntegerField()),
            eval_rows=Cast(KT("data__eval_rows"), IntegerField()),
            peak=Cast(KT("data__efficiency__peak_memory_bytes"), FloatField()),
            run_batch=Cast(KT("data__params__batch_size"), IntegerField()),
            run_length=Cast(KT("data__params__max_length"), IntegerField()),
            precision=KT("data__params__precision"),
            quantize=KT("data__params__quantize"),
            method=F("job__method"),
        )
        .values(
            "job_id",
            "method",
            "train_seconds",
            "train_tokens",
            "steps",
            "train_rows",
            "eval_rows",
            "peak",
            "run_batch",
            "run_length",
            "precision",
            "quantize",
        )[:CALIBRATION_JOBS]
    )
    return list(rows)


def _total_params(base_model: BaseModel, method: str, config: dict | None = None) -> int | None:
    """The model's parameters as a worker counted them, else as its config implies (a transformer's blocks hold
    about 12 x hidden^2 each, plus the embeddings)."""
    profile = (base_model.profile or {}).get(method) or next(iter((base_model.profile or {}).values()), None)
    if isinstance(profile, dict) and profile.get("total"):
        return profile["total"]
    if not config:
        return None
    hidden = config.get("hidden_size") or config.get("d_model")
    layers = config.get("num_hidden_layers") or config.get("n_layer")
    if not (hidden and layers):
        return None
    return 12 * layers * hidden**2 + (config.get("vocab_size") or 0) * hidden


def _rate(run: dict) -> float | None:
    """A past run's end-to-end rate (evaluations and checkpoints included), as peftcore.estimates measures it."""
    if not (run["run_batch"] and run["train_rows"]):
        return None
    return run_rate(
        train_seconds=run["train_seconds"],
        train_tokens=run["train_tokens"],
        steps=run["steps"],
        batch_size=run["run_batch"],
        eval_rows=run["eval_rows"] or 0,
        steps_per_epoch=math.ceil(run["train_rows"] / run["run_batch"]),
    )


def _setup(precision, quantize) -> tuple:
    """Runs measure alike when their precision and quantization match (empty and "auto" are the same)."""
    return (
        precision if precision not in (None, "", "auto") else "auto",
        quantize if quantize not in (None, "", "none") else None,
    )


def _activations(batch: int, length: int, config: dict | None, params: dict) -> float:
    """The memory kept for the backward pass, which grows with batch x length (a rough rule per layer)."""
    config = config or {}
    hidden = config.get("hidden_size") or config.get("d_model") or 768
    layers = config.get("num_hidden_layers") or config.get("n_layer") or 12
    return batch * length * hidden * layers * 20 * (2 if params.get("precision") == "bf16" else 4)


def _memory(same: list[dict], params: dict, config: dict | None, base_model, method) -> tuple[int | None, str]:
    batch, length = params["batch_size"], params["max_length"]
    measured = [run for run in same if run["peak"] and run["run_batch"] and run["run_length"]]
    if measured:
        # The measured peak holds what does not grow with the batch (the weights, the libraries: a CPU's peak is
        # the whole process) and the activations, which do: only those are scaled to the new batch x length.
        run = max(measured, key=lambda r: r["peak"])
        then = _activations(run["run_batch"], run["run_length"], config, params)
        memory = max(run["peak"] + _activations(batch, length, config, params) - then, run["peak"] * 0.5)
        return int(
            memory
        ), f"from job #{run['job_id']}'s measured peak (batch {run['run_batch']}, length {run['run_length']})"
    total = _total_params(base_model, method, config)
    if not total or not config:
        return None, "unknown until a job on this model has run"
    bytes_per_value = 2 if params.get("precision") == "bf16" else 4
    weights = total * (0.6 if params.get("quantize") == "4bit" else bytes_per_value)
    activations = _activations(batch, length, config, params)
    return int(weights * 1.2 + activations), "a rough rule from the model's size (weights, optimizer, activations)"


def _queue() -> tuple[int, int]:
    counts = dict(
        Job.objects.filter(status__in=(Job.Status.QUEUED, Job.Status.RUNNING), cancel_requested=False)
        .values_list("status")
        .annotate(n=Count("pk"))
        .order_by()
    )
    return counts.get(Job.Status.QUEUED, 0), counts.get(Job.Status.RUNNING, 0)


def _free_bytes(worker) -> int | None:
    gpus = worker.info.get("gpus") or []
    if gpus:
        return max((g["memory_total_mb"] - g["memory_used_mb"]) * 1024**2 for g in gpus)
    available = (worker.info.get("memory") or {}).get("available_mb")
    return available * 1024**2 if available else None


def _gb(size: float) -> str:
    return f"{size / 1024**3:.1f} GB" if size >= 1024**3 else f"{size / 1024**2:.0f} MB"
