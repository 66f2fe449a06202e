"""Training: one job spec in, events out, an adapter folder on disk.

A plain torch loop rather than the HF Trainer: the studio needs an event per optimizer step and full control
over what is saved. run() classifies every failure into an error event a user can act on. Checkpoints
(checkpoints.py) make a run exactly resumable, and a stop request (SIGTERM in the CLI) ends it with one.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from . import checkpoints, classification, generation
from .adapters import AdapterLoadError, save_native, write_method_file
from .artifacts import replace_folder, write_labels, write_model_card
from .data import DataError
from .errors import (BAD_DATA, BAD_PARAMS, INTERNAL, MODEL_LOAD, OUT_OF_MEMORY, Preempted, TrainingError,
                     is_out_of_memory)
from .events import EventSink
from .methods import Method, UnknownMethodError, get_method
from .methods._common import MethodBuildError
from .models import BUNDLED_MODEL_ID, BUNDLED_UPSTREAM_ID, LOCAL_PREFIX, check_model_folder, is_hub_id
from .schema import format_errors, validate_params
from .sft import AUTO, IGNORE_INDEX, SftExample, check_template, read_sft_examples
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
    # Checkpoints (checkpoints.py): where they go, how often (steps or seconds; neither: only when preempted), the
    # one to resume from; and the most rows one forward pass takes (gradients add up to the whole batch's).
    checkpoint_dir: Path | None = None
    checkpoint_every_steps: int | None = None
    checkpoint_every_seconds: float | None = None
    resume_from: Path | None = None
    micro_batch_size: int = 16


@dataclass
class FitResult:
    model: Any
    tokenizer: Any
    labels: list[str]
    adapter_dir: Path | None
    done: dict | None
    preempted: dict | None = None  # the preempted event when training was asked to stop (then no adapter)


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
    output_dir = Path(spec["output_dir"])
    every_seconds = spec.get("checkpoint_every_seconds")
    if every_seconds is not None and (isinstance(every_seconds, bool) or not isinstance(every_seconds, (int, float))
                                      or not math.isfinite(every_seconds) or every_seconds <= 0):
        raise TrainingError(BAD_PARAMS, f"checkpoint_every_seconds must be a number above 0 or null "
                                        f"(got {every_seconds!r})")
    micro_batch_size = _whole_number(spec, "micro_batch_size")
    resume_from = _path(spec, "resume_from")
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
        output_dir=output_dir,
        threads=threads,
        metadata=dict(spec.get("metadata") or {}),
        start_from=parse_start_from(spec.get("start_from")),
        input_column=spec.get("input_column") or None,
        messages_column=spec.get("messages_column") or None,
        template=spec.get("template") or AUTO,
        checkpoint_dir=Path(_path(spec, "checkpoint_dir") or output_dir / "checkpoints"),
        checkpoint_every_steps=_whole_number(spec, "checkpoint_every_steps"),
        checkpoint_every_seconds=every_seconds,
        resume_from=Path(resume_from) if resume_from else None,
        # more rows than the batch would change nothing: the batch is the most a step reads
        micro_batch_size=min(micro_batch_size or params["batch_size"], params["batch_size"]),
    )


def _whole_number(spec: dict, key: str) -> int | None:
    value = spec.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise TrainingError(BAD_PARAMS, f"{key} must be a whole number of at least 1 or null (got {value!r})")
    return value


def _path(spec: dict, key: str) -> str | None:
    value = spec.get(key)
    if value is not None and not isinstance(value, str):
        raise TrainingError(BAD_PARAMS, f"{key} must be a folder path or null (got {value!r})")
    return value or None


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


@dataclass
class Progress:
    """Where training stands: a checkpoint's state.json records it (with the tensors beside it) to resume from."""

    step: int = 0
    current_epoch: int = 1  # the epoch in progress, counted from 1
    position: int = 0  # the batches of that epoch done
    order: list[int] | None = None  # that epoch's row order, drawn from the data-order generator when it starts
    epoch_losses: list[float] = field(default_factory=list)
    train_tokens: int = 0
    train_seconds: float = 0.0  # the training loop's wall time, evaluations and checkpoints included
    eval_seconds: float = 0.0
    checkpoint_seconds: float = 0.0
    baseline: dict = field(default_factory=dict)  # the untrained model's {"metrics", "samples": [{row, generation}]}


@dataclass
class _Run:
    """One run's moving parts, handed between fit()'s phases."""

    job: Job
    sink: EventSink
    should_stop: Callable[[], bool]
    fingerprint: dict
    task: Any
    labels: list[str]
    train_rows: list
    eval_rows: list
    train_features: list
    eval_features: list
    tokenizer: Any
    model: Any
    device: Any
    optimizer: Any
    scheduler: Any
    generator: torch.Generator
    on_step: Callable[[Any, int], None] | None
    steps_per_epoch: int
    total_steps: int
    trainable_params: int
    total_params: int
    progress: Progress = field(default_factory=Progress)
    resumed_from_step: int | None = None
    evaluation: dict = field(default_factory=dict)  # the last epoch's
    clock: tuple[float, float] = (0.0, 0.0)  # (monotonic time the loop started, train seconds before it)
    last_checkpoint: tuple[int, float] = (0, 0.0)  # (step, monotonic time)


def fingerprint(job: Job) -> dict:
    """What a checkpoint must share with the job resuming from it: everything that shapes the weights and the
    schedule. Not the micro-batch size (the same effective batch), nor paths that differ between workers."""
    return {
        "task": job.task, "method": job.method.name, "method_params": job.method_params,
        "params": dict(job.params), "model": job.model_path.name,
        "dataset_sha256": job.metadata.get("dataset_sha256"),
        "eval_dataset_sha256": job.metadata.get("eval_dataset_sha256"),
        "columns": [job.text_column, job.label_column, job.input_column, job.messages_column],
        "template": job.template if job.task == SFT else None,
        "start_from": job.start_from.mode if job.start_from else None,
    }


def fit(spec: dict, sink: EventSink, should_stop: Callable[[], bool] | None = None) -> FitResult:
    """Train and save; emits start, then resumed (from a checkpoint) or the baseline eval, then progress, eval,
    checkpoint and done. Raises on failure (run() turns that into an event).

    should_stop() is read after every optimizer step: once true, that step's checkpoint is written and a
    preempted event ends the run instead of done (no adapter is saved). Before the loop it is read between
    phases; an errors.StopSignal (the CLI's, set on SIGTERM) also interrupts those phases at once."""
    job = parse_spec(spec)
    stop = should_stop or (lambda: False)
    identity = fingerprint(job)  # before fit() adjusts max_length to the model
    resume = None
    if job.resume_from:  # checked before anything heavy is loaded
        resume = checkpoints.read_state(job.resume_from)
        checkpoints.check_fingerprint(job.resume_from, resume, identity)
    try:
        with getattr(stop, "interruptible", contextlib.nullcontext)():
            run = _prepare(job, sink, stop, identity, resume)
    except Preempted:
        return FitResult(None, None, [], None, None, preempted=_preempted(sink, resume["step"] if resume else 0))
    stopped = _train_loop(run)
    if stopped:
        return FitResult(run.model, run.tokenizer, run.labels, None, None, preempted=stopped)
    return _finish(run)


def _stop_point(stop: Callable[[], bool]) -> None:
    if stop():
        raise Preempted()


def _preempted(sink: EventSink, step: int) -> dict:
    event = {"event": "preempted", "step": step}
    sink.emit(event)
    return event


def _prepare(job: Job, sink: EventSink, stop: Callable[[], bool], identity: dict, resume: dict | None) -> _Run:
    """Everything before the first optimizer step: data, model, method, optimizer; then the start event and
    either the checkpoint restored or the baseline evaluation."""
    params = job.params
    if job.threads:
        torch.set_num_threads(job.threads)
    check_architecture(job)
    if job.start_from:
        check_start(job.start_from, job.method, job.method_params, job.task)
    task, train_rows, eval_rows = _task_and_rows(job)
    labels = getattr(task, "labels", [])
    _stop_point(stop)
    tokenizer, model, new_modules = _load(job, task)
    steps_per_epoch = math.ceil(len(train_rows) / params["batch_size"])
    total_steps = steps_per_epoch * params["epochs"]
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
    _stop_point(stop)

    limit = classification.max_positions(model, tokenizer)
    if limit is not None and job.method.how == "prompts":
        limit -= job.method_params.get("num_virtual_tokens", 0)  # the virtual tokens take positions too
    if limit is not None and params["max_length"] > limit:
        params["max_length"] = limit  # the model cannot read further; the report shows the length used
    # Evaluation batches are micro-batches too: the micro-batch size is what fits on the device.
    task.tokenizer, task.max_length, task.batch_size, task.device = (tokenizer, params["max_length"],
                                                                     job.micro_batch_size, device)
    task.position_limit = limit
    train_features, eval_features = task.encode(train_rows), task.encode(eval_rows)
    _refuse_masked(task, train_rows, train_features, "training")
    _refuse_masked(task, eval_rows, eval_features, "evaluation")
    _stop_point(stop)

    optimizer = _optimizer(model, params["learning_rate"], params["weight_decay"])
    from transformers import get_linear_schedule_with_warmup

    scheduler = get_linear_schedule_with_warmup(optimizer, round(params["warmup_ratio"] * total_steps), total_steps)
    trainable_params, total_params = _count_parameters(model)
    run = _Run(
        job=job, sink=sink, should_stop=stop, fingerprint=identity, task=task, labels=labels,
        train_rows=train_rows, eval_rows=eval_rows, train_features=train_features, eval_features=eval_features,
        tokenizer=tokenizer, model=model, device=device, optimizer=optimizer, scheduler=scheduler,
        generator=torch.Generator().manual_seed(params["seed"]),
        # A continued AdaLoRA adapter keeps the ranks its budget allocated: its schedule ran in the first job.
        on_step=None if job.start_from and job.start_from.mode == "continue" else job.method.on_step,
        steps_per_epoch=steps_per_epoch, total_steps=total_steps, trainable_params=trainable_params,
        total_params=total_params,
    )
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
        "micro_batch_size": job.micro_batch_size,
        "device": device.type,
    })
    if resume:
        _resume(run, resume)
    else:
        _baseline(run)
    return run


def _baseline(run: _Run) -> None:
    # The untouched model first (a new head guesses, a base model writes what it would without training), so
    # the report shows what training gained. Evaluation draws no random numbers, so training is the same with
    # or without it.
    evaluation = run.task.evaluate(run.model, run.eval_features, run.eval_rows, final=True)
    samples = [{"row": s["row"], "generation": s["generation"]} for s in evaluation["report"].get("samples", [])]
    run.progress.baseline = {"metrics": evaluation["metrics"], "samples": samples}
    run.sink.emit({"event": "eval", "step": 0, "epoch": 0, "metrics": evaluation["metrics"]})


def _resume(run: _Run, state: dict) -> None:
    """Continue from a checkpoint: its weights, optimizer, schedule, RNGs and place in the data; its baseline
    evaluation stands in for a new one."""
    if state.get("total_steps") != run.total_steps or not 0 < state["step"] <= run.total_steps:
        raise TrainingError(BAD_PARAMS, f"the checkpoint {run.job.resume_from} is for a run of "
                                        f"{state.get('total_steps')} steps; this job has {run.total_steps}")
    checkpoints.restore(run.job.resume_from, state, model=run.model, optimizer=run.optimizer,
                        scheduler=run.scheduler, generator=run.generator)
    try:
        run.progress = Progress(**{name: state[name] for name in Progress.__dataclass_fields__})
    except KeyError as exc:
        raise TrainingError(INTERNAL, f"cannot resume: the checkpoint {run.job.resume_from} is damaged: its "
                                      f"state has no {exc}") from exc
    run.resumed_from_step = state["step"]
    run.sink.emit({"event": "resumed", "step": state["step"], "epoch": _epoch(run)})


def _epoch(run: _Run) -> float:
    return round(run.progress.step / run.steps_per_epoch, 4)


def _elapsed(run: _Run) -> float:
    started, before = run.clock
    return before + time.monotonic() - started


def _train_loop(run: _Run) -> dict | None:
    """The optimizer steps, an evaluation after each epoch, checkpoints when due. Returns the preempted event
    when should_stop() turned true, else None."""
    job, p, sink = run.job, run.progress, run.sink
    batch_size, epochs = job.params["batch_size"], job.params["epochs"]
    run.clock = (time.monotonic(), p.train_seconds)
    run.last_checkpoint = (p.step, time.monotonic())
    run.model.train()
    for epoch in range(p.current_epoch, epochs + 1):
        if p.order is None or p.current_epoch != epoch:  # a new epoch (not one a checkpoint left half done)
            p.current_epoch, p.position, p.epoch_losses = epoch, 0, []
            p.order = torch.randperm(len(run.train_features), generator=run.generator).tolist()
        while p.position < run.steps_per_epoch:
            first = p.position * batch_size
            loss, learning_rate = _optimizer_step(run, p.order[first:first + batch_size])
            p.step, p.position = p.step + 1, p.position + 1
            p.epoch_losses.append(loss)
            sink.emit({"event": "progress", "step": p.step, "total_steps": run.total_steps, "epoch": _epoch(run),
                       "loss": loss, "learning_rate": learning_rate})
            if _checkpoint_due(run):
                _checkpoint(run)
            if run.should_stop():
                if run.last_checkpoint[0] != p.step:
                    _checkpoint(run)
                return _preempted(sink, p.step)
        evaluating = time.monotonic()
        run.evaluation = run.task.evaluate(run.model, run.eval_features, run.eval_rows, final=epoch == epochs)
        p.eval_seconds += time.monotonic() - evaluating
        sink.emit({"event": "eval", "step": p.step, "epoch": epoch, "metrics": run.evaluation["metrics"]})
    p.train_seconds = _elapsed(run)
    run.model.eval()
    return None


def _optimizer_step(run: _Run, rows: list[int]) -> tuple[float, float]:
    """One optimizer step over `rows`, run as micro-batches whose gradients add up to the whole batch's: each
    chunk's loss is weighted by its share of what the batch's loss averages over (rows for classification,
    labelled tokens for generation). Returns (the batch's loss, the learning rate used)."""
    task, model, micro = run.task, run.model, run.job.micro_batch_size
    features = [run.train_features[i] for i in rows]
    chunks = [task.collate(features[i:i + micro]) for i in range(0, len(features), micro)]
    generative = isinstance(task, generation.GenerationTask)
    tokens = sum(_labelled_tokens(chunk["labels"], task.task) for chunk in chunks) if generative else 0
    run.optimizer.zero_grad(set_to_none=True)
    value = 0.0
    for chunk in chunks:
        mask = chunk.get("attention_mask")
        run.progress.train_tokens += int(mask.sum()) if mask is not None else chunk["input_ids"].numel()
        chunk = {key: tensor.to(run.device) for key, tensor in chunk.items()}
        _inject_out_of_memory(len(chunk["input_ids"]))
        if generative:
            total, _ = generation.token_loss(model(**chunk).logits, chunk["labels"], task.task)
            loss = total / max(tokens, 1)
        else:
            loss = task.loss(model, chunk) * (len(chunk["labels"]) / len(rows))
        loss.backward()
        value += loss.item()
    extra_loss = run.job.method.extra_loss
    if extra_loss is not None:  # a penalty on the weights, not the data: once per optimizer step
        extra = extra_loss(model)
        if torch.is_tensor(extra) and extra.requires_grad:
            extra.backward()
        value += float(extra)
    if not math.isfinite(value):
        raise TrainingError(BAD_PARAMS, f"training diverged at step {run.progress.step + 1} (the loss became "
                                        f"{value}); try a lower learning rate")
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], MAX_GRAD_NORM)
    learning_rate = run.scheduler.get_last_lr()[0]
    run.optimizer.step()
    if run.on_step is not None:
        run.on_step(model, run.progress.step)  # before the next zero_grad: it may read this step's gradients
    run.scheduler.step()
    return value, learning_rate


def _labelled_tokens(labels: torch.Tensor, task: str) -> int:
    """The positions generation.token_loss scores (a causal model predicts each token from the ones before it,
    so its first position is never scored)."""
    return int((labels[:, 1:] if task == SFT else labels).ne(IGNORE_INDEX).sum())


def _inject_out_of_memory(rows: int) -> None:
    # Test fault injection: with PEFTCORE_FAULT_OOM_ABOVE=N a training forward pass on more than N rows raises a
    # real torch.OutOfMemoryError, so the runner's out-of-memory handling can be tested on machines with no GPU.
    limit = os.environ.get("PEFTCORE_FAULT_OOM_ABOVE")
    if limit and rows > int(limit):
        raise torch.OutOfMemoryError(f"out of memory (injected by PEFTCORE_FAULT_OOM_ABOVE={limit}: a forward pass "
                                     f"on {rows} rows)")


def _checkpoint_due(run: _Run) -> bool:
    p, job = run.progress, run.job
    if p.step >= run.total_steps or p.step == run.last_checkpoint[0]:  # the adapter is saved after the last step
        return False
    every_steps, every_seconds = job.checkpoint_every_steps, job.checkpoint_every_seconds
    return bool(every_steps and p.step % every_steps == 0) or bool(
        every_seconds and time.monotonic() - run.last_checkpoint[1] >= every_seconds)


def _checkpoint(run: _Run) -> None:
    began = time.monotonic()
    p = run.progress
    state = {**asdict(p), "train_seconds": _elapsed(run), "epoch": _epoch(run), "total_steps": run.total_steps,
             "micro_batch_size": run.job.micro_batch_size, "fingerprint": run.fingerprint}
    path = checkpoints.write(run.job.checkpoint_dir, p.step, model=run.model, optimizer=run.optimizer,
                             scheduler=run.scheduler, generator=run.generator, state=state)
    p.checkpoint_seconds += time.monotonic() - began
    run.last_checkpoint = (p.step, time.monotonic())
    run.sink.emit({"event": "checkpoint", "step": p.step, "epoch": _epoch(run), "path": str(path)})


def _finish(run: _Run) -> FitResult:
    """The report, the adapter folder and the done event."""
    job, p, evaluation = run.job, run.progress, run.evaluation
    params = job.params
    metrics = dict(evaluation["metrics"], train_loss=sum(p.epoch_losses) / len(p.epoch_losses))
    working_seconds = p.train_seconds - p.eval_seconds - p.checkpoint_seconds
    report = {
        "task": job.task,
        "labels": run.labels,
        "metrics": metrics,
        **evaluation["report"],
        "train_rows": len(run.train_rows),
        "eval_rows": len(run.eval_rows),
        "trainable_params": run.trainable_params,
        "total_params": run.total_params,
        "train_seconds": round(p.train_seconds, 3),
        "baseline_metrics": p.baseline["metrics"],
        "efficiency": {
            "trainable_share": run.trainable_params / run.total_params if run.total_params else None,
            "tokens_per_second": round(p.train_tokens / max(working_seconds, 1e-9), 1),
            "train_tokens": p.train_tokens,
            "peak_memory_bytes": peak_memory_bytes(run.device),
        },
        "lineage": lineage(job, params),
        "device": run.device.type,
        "method": job.method.name,
        "method_params": job.method_params,
        "params": params,
        "micro_batch_size": job.micro_batch_size,
        "resumed_from_step": run.resumed_from_step,
    }
    before = {sample["row"]: sample["generation"] for sample in p.baseline["samples"]}
    for sample in report.get("samples", []):
        sample["baseline_generation"] = before.get(sample["row"])  # what the untrained model wrote
    adapter_dir = save_adapter(run.model, run.tokenizer, job, run.labels, report)
    report["efficiency"]["adapter_bytes"] = sum(p.stat().st_size for p in adapter_dir.rglob("*") if p.is_file())
    done = {"event": "done", "adapter_dir": str(adapter_dir.resolve()), "metrics": metrics, "report": report}
    run.sink.emit(done)
    return FitResult(model=run.model, tokenizer=run.tokenizer, labels=run.labels, adapter_dir=adapter_dir, done=done)


def classify_failure(exc: BaseException, micro_batch_size: int | None = None) -> TrainingError:
    if isinstance(exc, TrainingError):
        return exc
    if isinstance(exc, DataError):
        return TrainingError(BAD_DATA, str(exc))
    if is_out_of_memory(exc):
        rows = f" with micro-batches of {micro_batch_size} rows" if micro_batch_size else ""
        return TrainingError(
            OUT_OF_MEMORY, f"training ran out of memory{rows}; try a smaller micro-batch size, or a smaller batch "
                           "size or max length"
        )
    return TrainingError(INTERNAL, f"{type(exc).__name__}: {exc}")


def run(spec: dict, sink: EventSink, should_stop: Callable[[], bool] | None = None) -> dict:
    """Train one job. Returns the done event (or the preempted one, see fit()); on failure emits an error event
    and raises TrainingError. An out-of-memory error event names the micro-batch size that failed."""
    try:
        result = fit(spec, sink, should_stop)
    except Exception as exc:
        micro_batch_size = _micro_batch_size(spec) if is_out_of_memory(exc) else None
        error = classify_failure(exc, micro_batch_size)
        event = {"event": "error", "kind": error.kind, "message": error.message}
        if error.kind == OUT_OF_MEMORY:
            event["micro_batch_size"] = micro_batch_size
        sink.emit(event)
        if error is exc:
            raise
        raise error from exc
    return result.done or result.preempted


def _micro_batch_size(spec: dict) -> int | None:
    try:
        return parse_spec(spec).micro_batch_size
    except TrainingError:
        return None
