"""Training: one job spec in, events out, an adapter folder on disk.

A plain torch loop rather than the HF Trainer: the studio needs an event per optimizer step and full control
over what is saved. run() classifies every failure into an error event a user can act on.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import classification, generation
from .adapters import AdapterLoadError, save_native, write_method_file
from .artifacts import replace_folder, write_labels, write_model_card
from .data import DataError
from .errors import BAD_DATA, BAD_PARAMS, INTERNAL, MODEL_LOAD, OUT_OF_MEMORY, TrainingError, is_out_of_memory
from .events import EventSink
from .methods import Method, UnknownMethodError, get_method
from .methods._common import MethodBuildError
from .models import BUNDLED_MODEL_ID, BUNDLED_UPSTREAM_ID, LOCAL_PREFIX, check_model_folder, is_hub_id
from .schema import format_errors, validate_params
from .sft import AUTO, SftExample, check_template, read_sft_examples
from .splits import holdout_split, shuffle_and_cut
from .start_from import StartFrom, apply_start, carry_base, check_start, parse_start_from, starting_labels
from .tasks import GENERATION_TASKS, SFT, TEXT_CLASSIFICATION, UnknownTaskError, architecture_refusal, check_task
from .training_params import TRAINING_PARAMS

REQUIRED_KEYS = ("task", "model_path", "method", "train_file", "output_dir")
ADAPTER_DIR = "adapter"
MAX_GRAD_NORM = 1.0


@dataclass
class Job:
    """A checked spec: the method looked up and every parameter validated, defaults filled in."""

    task: str
    method: Method
    method_params: dict
    params: dict
    model_path: Path
    train_file: str
    train_format: str | None
    eval_file: str | None
    eval_format: str | None
    text_column: str
    label_column: str
    output_dir: Path
    threads: int | None
    metadata: dict = field(default_factory=dict)
    start_from: StartFrom | None = None  # train on from a finished job's adapter (see start_from.py)
    # SFT only: an extra input column appended to the prompt, or a chat `messages` column instead of
    # text_column (prompt) and label_column (response); the prompt template (sft.TEMPLATES, or auto).
    input_column: str | None = None
    messages_column: str | None = None
    template: str = AUTO


@dataclass
class FitResult:
    model: Any
    tokenizer: Any
    labels: list[str]
    adapter_dir: Path
    done: dict


def parse_spec(spec: dict) -> Job:
    if not isinstance(spec, dict):
        raise TrainingError(BAD_PARAMS, "the job spec must be a JSON object")
    missing = [key for key in REQUIRED_KEYS if not spec.get(key)]
    if missing:
        raise TrainingError(BAD_PARAMS, f"the job spec is missing: {', '.join(missing)}")
    try:
        task = check_task(spec["task"])
        method = get_method(spec["method"])
    except (UnknownTaskError, UnknownMethodError) as exc:
        raise TrainingError(BAD_PARAMS, str(exc)) from exc
    if task not in method.tasks:
        raise TrainingError(BAD_PARAMS, f"method {method.name!r} does not support the task {task!r}")
    _check_columns(spec, task)
    method_params, method_errors = validate_params(method.params, spec.get("method_params"))
    params, param_errors = validate_params(TRAINING_PARAMS, spec.get("params"))
    if method_errors or param_errors:
        parts = []
        if method_errors:
            parts.append(f"{method.label} parameters: {format_errors(method_errors)}")
        if param_errors:
            parts.append(f"training parameters: {format_errors(param_errors)}")
        raise TrainingError(BAD_PARAMS, "; ".join(parts))
    if params["learning_rate"] is None:
        params["learning_rate"] = method.recommended_learning_rate
    threads = spec.get("threads")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise TrainingError(BAD_PARAMS, f"threads must be a whole number of at least 1 (got {threads!r})")
    return Job(
        task=task,
        method=method,
        method_params=method_params,
        params=params,
        model_path=Path(spec["model_path"]),
        train_file=spec["train_file"],
        train_format=spec.get("train_format"),
        eval_file=spec.get("eval_file"),
        eval_format=spec.get("eval_format"),
        text_column=spec.get("text_column") or "",
        label_column=spec.get("label_column") or "",
        output_dir=Path(spec["output_dir"]),
        threads=threads,
        metadata=dict(spec.get("metadata") or {}),
        start_from=parse_start_from(spec.get("start_from")),
        input_column=spec.get("input_column") or None,
        messages_column=spec.get("messages_column") or None,
        template=spec.get("template") or AUTO,
    )


def _check_columns(spec: dict, task: str) -> None:
    if task == SFT and spec.get("messages_column"):
        wanted = ()
    else:
        wanted = ("text_column", "label_column")
    missing = [key for key in wanted if not spec.get(key)]
    if missing:
        hint = " (or, for SFT, messages_column)" if task == SFT else ""
        raise TrainingError(BAD_PARAMS, f"the job spec is missing: {', '.join(missing)}{hint}")
    try:
        check_template(spec.get("template") or AUTO)
    except ValueError as exc:
        raise TrainingError(BAD_PARAMS, str(exc)) from exc


def seed_everything(seed: int) -> None:
    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def _read_generation(path: str, fmt: str | None, job: Job, role: str) -> list[SftExample]:
    try:
        return read_sft_examples(path, fmt=fmt, prompt_column=job.text_column or None,
                                 response_column=job.label_column or None, input_column=job.input_column,
                                 messages_column=job.messages_column if job.task == SFT else None)
    except DataError as exc:
        raise TrainingError(BAD_DATA, f"{role} file {Path(path).name!r}: {exc}") from exc


def prepare_generation_data(job: Job) -> tuple[list[SftExample], list[SftExample]]:
    rows = shuffle_and_cut(_read_generation(job.train_file, job.train_format, job, "training"),
                           seed=job.params["seed"], max_rows=job.params["max_rows"])
    if job.eval_file:
        return rows, _read_generation(job.eval_file, job.eval_format, job, "evaluation")
    if len(rows) < 2:
        raise TrainingError(BAD_DATA, "the training file has one row; at least 2 are needed to hold some out for "
                                      "evaluation (or give an evaluation file)")
    return holdout_split(rows, job.params["eval_fraction"])


def _refuse_masked(task, rows: list, features: list[dict], role: str) -> None:
    """Refuse rows whose whole answer the max length cuts away: they would train on nothing."""
    masked = [row.row for row, f in zip(rows, features) if f.get("response_tokens") == 0]
    if masked:
        shown = ", ".join(map(str, sorted(masked)[:5])) + (" ..." if len(masked) > 5 else "")
        raise TrainingError(
            BAD_DATA,
            f"{len(masked)} {role} row(s) ({shown}) have prompts so long that the maximum length of "
            f"{task.max_length} tokens leaves none of the response to learn from; raise the maximum length or "
            "shorten those prompts",
        )


@contextlib.contextmanager
def _failures_as(kind: str, what: str):
    """Report unexpected exceptions of one phase as `kind` (e.g. anything while loading -> model_load)."""
    try:
        yield
    except TrainingError:
        raise
    except Exception as exc:
        if is_out_of_memory(exc):
            raise
        raise TrainingError(kind, f"{what}: {exc}") from exc


def _count_parameters(model) -> tuple[int, int]:
    if hasattr(model, "get_nb_trainable_parameters"):
        trainable, total = model.get_nb_trainable_parameters()
        return int(trainable), int(total)
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def _optimizer(model, learning_rate: float, weight_decay: float):
    # Only true matrices are decayed: pulling biases, norms or (IA)^3 scaling vectors to zero harms them.
    decay, no_decay = [], []
    for parameter in model.parameters():
        if parameter.requires_grad:
            is_matrix = parameter.ndim >= 2 and min(parameter.shape) > 1
            (decay if is_matrix else no_decay).append(parameter)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=learning_rate)


def _upstream_base(base_model: str) -> str:
    """The base model name recorded in adapter_config.json: one that means something off this machine."""
    if base_model == BUNDLED_MODEL_ID:
        return BUNDLED_UPSTREAM_ID
    if base_model.startswith(LOCAL_PREFIX):
        return base_model[len(LOCAL_PREFIX):]
    return base_model if is_hub_id(base_model) else Path(base_model).name


def save_adapter(model, tokenizer, job: Job, labels: list[str], report: dict) -> Path:
    job.output_dir.mkdir(parents=True, exist_ok=True)
    partial = job.output_dir / f".{ADAPTER_DIR}.partial"
    if partial.exists():
        shutil.rmtree(partial)
    base_model = job.metadata.get("base_model") or str(job.model_path)
    for config in getattr(model, "peft_config", {}).values():
        config.base_model_name_or_path = _upstream_base(base_model)
    if job.method.saved_as == "peft":
        # save_embedding_layers=False: the vocabulary never changes here, and "auto" would look the base model
        # up on the hub (a network call, and a hang on machines without internet).
        model.save_pretrained(str(partial), safe_serialization=True, save_embedding_layers=False)
    else:
        save_native(model, partial, method=job.method.name, params=job.method_params, task=job.task,
                    base_model=_upstream_base(base_model))
    tokenizer.save_pretrained(str(partial))
    write_labels(partial, labels)
    write_method_file(partial, method=job.method.name, params=job.method_params, task=job.task,
                      template=job.template if job.task == SFT else None)
    stacked = carry_base(job.start_from, partial)
    write_model_card(  # written last: it replaces the generic README.md peft writes
        partial,
        base_model=base_model,
        method=job.method.name,
        method_params=job.method_params,
        params=job.params,
        labels=labels,
        metrics=report["metrics"],
        dataset_sha256=job.metadata.get("dataset_sha256"),
        eval_dataset_sha256=job.metadata.get("eval_dataset_sha256"),
        task=job.task,
        dataset_name=job.metadata.get("dataset_name"),
        train_rows=report["train_rows"],
        eval_rows=report["eval_rows"],
        trainable_params=report["trainable_params"],
        total_params=report["total_params"],
        saved_as=job.method.saved_as,
        stacked=stacked,
        template=job.template if job.task == SFT else None,
    )
    return replace_folder(partial, job.output_dir / ADAPTER_DIR)


def peak_memory_bytes(device) -> int:
    """The accelerator's peak allocation, or on a CPU this process's peak resident memory."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux reports KiB


def lineage(job: Job, params: dict) -> dict:
    """What a run needs to be repeated: seed, resolved configuration, data hashes and library versions."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    def installed(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    return {
        "seed": params["seed"], "method": job.method.name, "method_params": job.method_params, "params": params,
        "base_model": job.metadata.get("base_model") or str(job.model_path),
        "dataset_sha256": job.metadata.get("dataset_sha256"),
        "eval_dataset_sha256": job.metadata.get("eval_dataset_sha256"),
        "start_from": {"mode": job.start_from.mode} if job.start_from else None,
        "columns": {key: value for key, value in (
            ("text_column", job.text_column), ("label_column", job.label_column), ("input_column", job.input_column),
            ("messages_column", job.messages_column)) if value},
        **({"template": job.template} if job.task == SFT else {}),
        "versions": {"python": platform.python_version(),
                     **{name: installed(name) for name in ("torch", "transformers", "peft", "safetensors")}},
    }


def check_architecture(job: Job) -> None:
    """Refuse a method/model combination before anything is loaded or trained, with the method's reason."""
    try:
        config = json.loads((job.model_path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # loading the model reports a missing or broken config as model_load
    model_type = config.get("model_type", "") if isinstance(config, dict) else ""
    config = config if isinstance(config, dict) else {}
    reason = job.method.supports(model_type, job.task)
    if job.task in GENERATION_TASKS:
        reason = reason or architecture_refusal(config, job.task)
    if reason:
        raise TrainingError(BAD_PARAMS, reason)


def _task_and_rows(job: Job):
    """(the task's side of the run, train rows, eval rows); labels are the classifier's, [] for generation."""
    if job.task == TEXT_CLASSIFICATION:
        train_rows, eval_rows, labels = classification.read_rows(job)
        if job.start_from:
            labels = starting_labels(job.start_from, labels)  # the head the adapter brings decides the order
        return classification.ClassificationTask(labels), train_rows, eval_rows
    train_rows, eval_rows = prepare_generation_data(job)
    return generation.GenerationTask(job.task, template=job.template), train_rows, eval_rows


def _load(job: Job, task) -> tuple[Any, Any, list[str]]:
    """(tokenizer, model, new_modules), seeded so a new classifier head starts the same way every run."""
    with _failures_as(MODEL_LOAD, f"could not load the model from {job.model_path}"):
        check_model_folder(job.model_path)
        tokenizer = classification.load_tokenizer(job.model_path)
        seed_everything(job.params["seed"])
        if job.task == TEXT_CLASSIFICATION:
            model, new_modules = classification.load_model(job.model_path, task.labels, tokenizer.pad_token_id)
        else:
            model, new_modules = generation.load_model(job.model_path, job.task)
    return tokenizer, model, new_modules


def fit(spec: dict, sink: EventSink) -> FitResult:
    """Train and save; emits start/progress/eval/done. Raises on failure (run() turns that into an event)."""
    job = parse_spec(spec)
    params = job.params
    if job.threads:
        torch.set_num_threads(job.threads)
    check_architecture(job)
    if job.start_from:
        check_start(job.start_from, job.method, job.method_params, job.task)
    task, train_rows, eval_rows = _task_and_rows(job)
    labels = getattr(task, "labels", [])
    tokenizer, model, new_modules = _load(job, task)
    batch_size, epochs = params["batch_size"], params["epochs"]
    steps_per_epoch = math.ceil(len(train_rows) / batch_size)
    total_steps = steps_per_epoch * epochs
    try:
        if job.start_from:
            model = apply_start(model, job.start_from, job.method, job.method_params, job.task,
                                new_modules=new_modules, total_steps=total_steps)
        else:
            model = job.method.build(model, job.method_params, job.task, new_modules=new_modules,
                                     total_steps=total_steps)
    except (MethodBuildError, AdapterLoadError) as exc:
        raise TrainingError(BAD_PARAMS, str(exc)) from exc
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)

    limit = classification.max_positions(model, tokenizer)
    if limit is not None and job.method.how == "prompts":
        limit -= job.method_params.get("num_virtual_tokens", 0)  # the virtual tokens take positions too
    if limit is not None and params["max_length"] > limit:
        params["max_length"] = limit  # the model cannot read further; the report shows the length used
    task.tokenizer, task.max_length, task.batch_size, task.device = tokenizer, params["max_length"], batch_size, device
    task.position_limit = limit
    train_features, eval_features = task.encode(train_rows), task.encode(eval_rows)
    _refuse_masked(task, train_rows, train_features, "training")
    _refuse_masked(task, eval_rows, eval_features, "evaluation")

    optimizer = _optimizer(model, params["learning_rate"], params["weight_decay"])
    from transformers import get_linear_schedule_with_warmup

    scheduler = get_linear_schedule_with_warmup(optimizer, round(params["warmup_ratio"] * total_steps), total_steps)
    trainable_params, total_params = _count_parameters(model)
    trainable = [p for p in model.parameters() if p.requires_grad]
    sink.emit({
        "event": "start",
        "total_steps": total_steps,
        "train_rows": len(train_rows),
        "eval_rows": len(eval_rows),
        "labels": labels,
        "trainable_params": trainable_params,
        "total_params": total_params,
        "method": job.method.name,
        "task": job.task,
    })

    # A continued AdaLoRA adapter keeps the ranks its budget allocated: its schedule ran in the first job.
    on_step = None if job.start_from and job.start_from.mode == "continue" else job.method.on_step
    generator = torch.Generator().manual_seed(params["seed"])
    # The untouched model first (a new head guesses, a base model writes what it would without training), so
    # the report shows what training gained. Evaluation draws no random numbers, so training is the same with
    # or without it.
    baseline_eval = task.evaluate(model, eval_features, eval_rows, final=True)
    baseline = baseline_eval["metrics"]
    sink.emit({"event": "eval", "step": 0, "epoch": 0, "metrics": baseline})
    started = time.monotonic()
    eval_seconds, train_tokens = 0.0, 0
    step = 0
    evaluation: dict = {}
    epoch_losses: list[float] = []
    model.train()
    for epoch in range(1, epochs + 1):
        order = torch.randperm(len(train_features), generator=generator).tolist()
        epoch_losses = []
        for first in range(0, len(order), batch_size):
            batch = task.collate([train_features[i] for i in order[first:first + batch_size]])
            train_tokens += int(batch["attention_mask"].sum()) if "attention_mask" in batch else batch["input_ids"].numel()
            loss = task.loss(model, {key: value.to(device) for key, value in batch.items()})
            if job.method.extra_loss is not None:
                loss = loss + job.method.extra_loss(model)
            value = loss.item()
            if not math.isfinite(value):
                raise TrainingError(
                    BAD_PARAMS,
                    f"training diverged at step {step + 1} (the loss became {value}); try a lower learning rate",
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, MAX_GRAD_NORM)
            learning_rate = scheduler.get_last_lr()[0]
            optimizer.step()
            if on_step is not None:
                on_step(model, step)  # before the next zero_grad: it may read this step's gradients
            scheduler.step()
            step += 1
            epoch_losses.append(value)
            sink.emit({
                "event": "progress",
                "step": step,
                "total_steps": total_steps,
                "epoch": round(step / steps_per_epoch, 4),
                "loss": value,
                "learning_rate": learning_rate,
            })
        evaluating = time.monotonic()
        evaluation = task.evaluate(model, eval_features, eval_rows, final=epoch == epochs)
        eval_seconds += time.monotonic() - evaluating
        sink.emit({"event": "eval", "step": step, "epoch": epoch, "metrics": evaluation["metrics"]})
    train_seconds = time.monotonic() - started
    model.eval()

    metrics = dict(evaluation["metrics"], train_loss=sum(epoch_losses) / len(epoch_losses))
    report = {
        "task": job.task,
        "labels": labels,
        "metrics": metrics,
        **evaluation["report"],
        "train_rows": len(train_rows),
        "eval_rows": len(eval_rows),
        "trainable_params": trainable_params,
        "total_params": total_params,
        "train_seconds": round(train_seconds, 3),
        "baseline_metrics": baseline,
        "efficiency": {
            "trainable_share": trainable_params / total_params if total_params else None,
            "tokens_per_second": round(train_tokens / max(train_seconds - eval_seconds, 1e-9), 1),
            "train_tokens": train_tokens,
            "peak_memory_bytes": peak_memory_bytes(device),
        },
        "lineage": lineage(job, params),
        "device": device.type,
        "method": job.method.name,
        "method_params": job.method_params,
        "params": params,
    }
    before = {sample["row"]: sample["generation"] for sample in baseline_eval["report"].get("samples", [])}
    for sample in report.get("samples", []):
        sample["baseline_generation"] = before.get(sample["row"])  # what the untrained model wrote
    adapter_dir = save_adapter(model, tokenizer, job, labels, report)
    report["efficiency"]["adapter_bytes"] = sum(p.stat().st_size for p in adapter_dir.rglob("*") if p.is_file())
    done = {"event": "done", "adapter_dir": str(adapter_dir.resolve()), "metrics": metrics, "report": report}
    sink.emit(done)
    return FitResult(model=model, tokenizer=tokenizer, labels=labels, adapter_dir=adapter_dir, done=done)


def classify_failure(exc: BaseException) -> TrainingError:
    if isinstance(exc, TrainingError):
        return exc
    if isinstance(exc, DataError):
        return TrainingError(BAD_DATA, str(exc))
    if is_out_of_memory(exc):
        return TrainingError(
            OUT_OF_MEMORY, "training ran out of memory; try a smaller batch size or max length"
        )
    return TrainingError(INTERNAL, f"{type(exc).__name__}: {exc}")


def run(spec: dict, sink: EventSink) -> dict:
    """Train one job. Returns the done event; on failure emits an error event and raises TrainingError."""
    try:
        return fit(spec, sink).done
    except Exception as exc:
        error = classify_failure(exc)
        sink.emit({"event": "error", "kind": error.kind, "message": error.message})
        if error is exc:
            raise
        raise error from exc
