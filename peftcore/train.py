"""Training: one job spec in, events out, an adapter folder on disk.

A plain torch loop rather than the HF Trainer: the studio needs an event per optimizer step and full control
over what is saved. run() classifies every failure into an error event a user can act on (failures.py).
Checkpoints make a run exactly resumable, and a stop request (SIGTERM in the CLI) ends it with one. The parts:
spec.py (the job spec), tasks/ (what differs per task), loop.py (the optimizer steps), checkpoints.py,
report.py and saving.py (the adapter folder). Just over 400 lines: _prepare() is one ordered recipe (data, model,
method, lengths, optimizer, baseline, probe) that reads best whole.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from . import (
    base_pruning,
    checkpoints,
    combine_run,
    defaults,
    density,
    devices,
    distributed,
    quantize,
    run_options,
    task_routing,
)
from .adapters import AdapterLoadError
from .checkpoints import fingerprint
from .errors import BAD_PARAMS, MODEL_LOAD, Preempted, TrainingError, is_out_of_memory
from .events import EventSink, phase
from .failures import classify_failure, error_event, failures_as
from .loop import Run, baseline, make_optimizer, preempted, resume, stop_point, train_loop
from .methods import checkpointing_problem, virtual_tokens_problem
from .methods._common import MethodBuildError
from .models import check_model_folder
from .probe import probe_head
from .report import build_report, lineage, peak_memory_bytes
from .saving import ADAPTER_DIR, save_adapter
from .spec import REQUIRED_KEYS, TrainSpec, parse_spec
from .start_from import apply_start, check_start, starting_labels
from .tasks import Task, get_task, max_positions

# Names other code imports from here (the rest of the job moved to the modules above).
__all__ = [
    "ADAPTER_DIR",
    "REQUIRED_KEYS",
    "FitResult",
    "TrainSpec",
    "check_architecture",
    "classify_failure",
    "fingerprint",
    "fit",
    "lineage",
    "parse_spec",
    "peak_memory_bytes",
    "run",
    "save_adapter",
    "seed_everything",
]


@dataclass
class FitResult:
    model: Any
    tokenizer: Any
    labels: list[str]
    adapter_dir: Path | None
    done: dict | None
    preempted: dict | None = None  # the preempted event when training was asked to stop (then no adapter)


def seed_everything(seed: int) -> None:
    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def check_architecture(spec: TrainSpec) -> None:
    """Refuse a method/model/task combination before anything is loaded or trained, with the reason."""
    try:
        config = json.loads((spec.model_path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # loading the model reports a missing or broken config as model_load
    config = config if isinstance(config, dict) else {}
    reason = spec.method.supports(config.get("model_type", ""), spec.task) or get_task(spec.task).architecture_refusal(
        config
    )
    if reason:
        raise TrainingError(BAD_PARAMS, reason)


def _count_parameters(model) -> tuple[int, int]:
    if hasattr(model, "get_nb_trainable_parameters"):
        trainable, total = model.get_nb_trainable_parameters()
        return int(trainable), int(total)
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def fit(spec: dict, sink: EventSink, should_stop: Callable[[], bool] | None = None) -> FitResult:
    """Train and save; emits start, then resumed (from a checkpoint) or the baseline eval, then progress, eval,
    checkpoint and done. Raises on failure (run() turns that into an event).

    should_stop() is read after every optimizer step: once true, that step's checkpoint is written and a
    preempted event ends the run instead of done (no adapter is saved). Before the loop it is read between
    phases; an errors.StopSignal (the CLI's, set on SIGTERM) also interrupts those phases at once."""
    job = parse_spec(spec)
    stop = should_stop or (lambda: False)
    identity = fingerprint(job)  # before fit() adjusts max_length to the model
    state = None
    if job.resume_from:  # checked before anything heavy is loaded
        state = checkpoints.read_state(job.resume_from)
        checkpoints.check_fingerprint(job.resume_from, state, identity)
    helpers = []
    if job.processes > 1 and job.rank == 0:  # the other ranks, started by this one (distributed.py)
        job.port = distributed.free_port()
        helpers = distributed.start_helpers({**spec, "port": job.port}, job.processes, job.port, job.output_dir)
    try:
        try:
            with getattr(stop, "interruptible", contextlib.nullcontext)():
                if job.combine:  # the parents combined into the adapter this run evaluates
                    combine_run.combine_parents(job, sink)
                run = _prepare(job, sink, stop, identity, state)
        except Preempted:
            return FitResult(None, None, [], None, None, preempted=preempted(sink, state["step"] if state else 0))
        stopped = train_loop(run)
        if stopped:
            return FitResult(run.model, run.tokenizer, run.labels, None, None, preempted=stopped)
        if not run.group.main:  # rank 0 saves and reports for the job
            return FitResult(run.model, run.tokenizer, run.labels, None, None)
        return _finish(run)
    finally:
        distributed.leave()
        for helper in helpers:
            try:
                helper.wait(timeout=60)
            except subprocess.TimeoutExpired:
                helper.kill()


def _load(job: TrainSpec, task: Task, labels: list[str], device) -> tuple[Any, Any, list[str]]:
    """(tokenizer, model, new_modules), seeded so a new classifier head starts the same way every run. A 4-bit
    base (QLoRA) is loaded straight onto the GPU, quantised as it loads."""
    loading = None
    if job.params.get("quantize") == quantize.FOUR_BIT:
        compute = torch.bfloat16 if job.params["precision"] == devices.BF16 else torch.float32
        loading = {"quantization_config": quantize.quantization_config(device, compute), "device_map": {"": device}}
    with failures_as(MODEL_LOAD, f"could not load the model from {job.model_path}"):
        check_model_folder(job.model_path)
        tokenizer = task.load_tokenizer(job.model_path)
        seed_everything(job.params["seed"])
        model, new_modules = task.load_model(
            job.model_path, labels, tokenizer, options=task.options(job), loading=loading
        )
    if loading is not None:
        model = quantize.prepare(model, bool(job.params.get("gradient_checkpointing")))
    return tokenizer, model, new_modules


def _prepare(job: TrainSpec, sink: EventSink, stop: Callable[[], bool], identity: dict, state: dict | None) -> Run:
    """Everything before the first optimizer step: data, model, method, optimizer; then the start event and
    either the checkpoint restored or the baseline evaluation."""
    params, task = job.params, get_task(job.task)
    if job.threads:
        torch.set_num_threads(job.threads)
    check_architecture(job)
    if problem := checkpointing_problem(job.method, params):
        raise TrainingError(BAD_PARAMS, problem)
    if job.start_from:
        check_start(job.start_from, job.method, job.method_params, job.task)
        cut = job.start_from.mode == "continue" and base_pruning.read_plan(job.start_from.folder)
        if cut and (problem := base_pruning.reference_problem(task, params)):
            raise TrainingError(
                BAD_PARAMS,
                f"the adapter to continue was trained on a cut base model (Light-PEFT), which would then be "
                f"{problem}: choose the ORPO loss, which has no reference, or stack on the adapter instead",
            )
    phase(sink, "reading the data")
    rows = task.read_rows(job)
    tasks = _tasks(job, rows) if job.group_column else None
    if job.params["eval_fraction"] is None and not job.eval_file:
        job.choices["params.eval_fraction"] = defaults.eval_reason(len(rows.train) + len(rows.eval))
    job.choices.update(task.choice_reasons(job))
    labels = rows.labels
    if job.start_from and task.has_labels:
        labels = starting_labels(job.start_from, labels)  # the head the adapter brings decides the order
    stop_point(stop)
    job.choose(_facts(task, len(rows.train), len(labels)))  # batch size and epochs from the row count
    device = distributed.device_of(job.rank) if job.processes > 1 else None
    device = device or devices.pick_device()
    group = distributed.join(job.rank, job.processes, job.port, device)
    precision, why = devices.resolve_precision(device, params["precision"])
    if params["precision"] != precision:
        job.choices["params.precision"] = why
    params["precision"] = precision
    phase(sink, f"loading the model on the {device.type.upper()}")
    tokenizer, model, new_modules = _load(job, task, labels, device)
    params = job.params
    # a combination job trains nothing (but a learned one): its one "epoch" of no steps is the evaluation
    summed = job.combine and not combine_run.learned(job)
    steps_per_epoch = 0 if summed else math.ceil(len(rows.train) / params["batch_size"])
    total_steps = steps_per_epoch * params["epochs"]
    try:
        if job.start_from:
            model = apply_start(
                model,
                job.start_from,
                job.method,
                job.method_params,
                job.task,
                new_modules=new_modules,
                total_steps=total_steps,
            )
        else:
            model = job.method.build(
                model, job.method_params, job.task, new_modules=new_modules, total_steps=total_steps
            )
    except (MethodBuildError, AdapterLoadError) as exc:
        raise TrainingError(BAD_PARAMS, str(exc)) from exc
    if tasks is not None:
        job.method.expand_tasks(model, len(tasks.values))
    if params.get("gradient_checkpointing"):
        _checkpoint_activations(model)
    if params.get("quantize") != quantize.FOUR_BIT:  # a 4-bit model is already on its GPU and cannot move
        model.to(device)
    stop_point(stop)

    limit = max_positions(model, tokenizer)
    if limit is not None and job.method.how == "prompts":
        if problem := virtual_tokens_problem(job.method, job.method_params, limit):
            raise TrainingError(BAD_PARAMS, problem)
        limit -= job.method_params.get("num_virtual_tokens", 0)  # the virtual tokens take positions too
    if params["max_length"] is None:
        # Fit 95% of the texts (defaults.py), as the model allows: training and evaluation texts together, since
        # an evaluation file may hold longer texts than the training rows (SST-2's phrases against its sentences).
        measuring = _runner(job, task, tokenizer, labels, device, limit, limit or defaults.LENGTH_CAP[True])
        features = measuring.encode([*rows.train, *rows.eval])
        lengths = sorted(_token_length(f) for f in features)
        p95 = lengths[min(len(lengths) - 1, math.ceil(0.95 * len(lengths)) - 1)] if lengths else defaults.MIN_LENGTH
        prompts = [n for n in map(_prompt_length, features) if n is not None]
        keep = max(prompts) + 1 if prompts else None
        job.choose(_facts(task, len(rows.train), len(labels), token_p95=p95, position_limit=limit, keep_answers=keep))
    if limit is not None and params["max_length"] > limit:
        params["max_length"] = limit  # the model cannot read further; the report shows the length used
    # Evaluation batches are micro-batches too: the micro-batch size is what fits on the device.
    runner = _runner(job, task, tokenizer, labels, device, limit, params["max_length"])
    phase(sink, f"tokenizing {len(rows.train):,} training and {len(rows.eval):,} evaluation rows")
    train_features, eval_features = runner.encode(rows.train), runner.encode(rows.eval)
    runner.refuse(rows.train, train_features, "training")
    runner.refuse(rows.eval, eval_features, "evaluation")
    if tasks is not None:
        task_routing.tag(train_features, tasks.train)
        task_routing.tag(eval_features, tasks.eval)
    stop_point(stop)
    # a stacked method is new on top of the merged adapter: its data-driven start runs as on the base model
    continuing = job.start_from is not None and job.start_from.mode == "continue"
    if job.method.data_init is not None and not continuing and not job.combine:
        run_options.data_init(job, model, runner, train_features, sink, device, resuming=state is not None)

    head = _head_parameters(model, new_modules)
    # An adapter a job starts from brings a trained head: no rate of its own then.
    head_rate = None if job.start_from else params.get("head_learning_rate")
    optimizer = make_optimizer(
        model, params["learning_rate"], params["weight_decay"], head, head_rate, run_options.galore(params)
    )
    from transformers import get_linear_schedule_with_warmup

    scheduler = get_linear_schedule_with_warmup(optimizer, round(params["warmup_ratio"] * total_steps), total_steps)
    trainable_params, total_params = _count_parameters(model)
    run = Run(
        spec=job,
        sink=sink,
        should_stop=stop,
        fingerprint=identity,
        runner=runner,
        labels=labels,
        rows=rows,
        train_features=train_features,
        eval_features=eval_features,
        tokenizer=tokenizer,
        model=model,
        device=device,
        optimizer=optimizer,
        scheduler=scheduler,
        generator=torch.Generator().manual_seed(params["seed"]),
        # A continued AdaLoRA adapter keeps the ranks its budget allocated: its schedule ran in the first job.
        on_step=None if job.start_from and job.start_from.mode == "continue" else job.method.on_step,
        steps_per_epoch=steps_per_epoch,
        total_steps=total_steps,
        trainable_params=trainable_params,
        total_params=total_params,
        head=head,
        precision=precision,
        group=group,
        tasks=tasks,
    )
    sink.emit(
        {
            "event": "start",
            "total_steps": total_steps,
            "train_rows": len(rows.train),
            "eval_rows": len(rows.eval),
            "labels": labels,
            "trainable_params": trainable_params,
            "total_params": total_params,
            "method": job.method.name,
            "task": job.task,
            "micro_batch_size": job.micro_batch_size,
            "device": device.type,
            "precision": precision,
            "choices": job.choices,
        }
    )
    run_options.add_regularisers(run, task, new_modules)
    run_options.add_pruning(run, state)
    if state:
        resume(run, state)
    else:
        if params.get("baseline_eval", True):
            phase(sink, "measuring the untrained model")
            baseline(run)
            if tasks is not None:
                with devices.autocast(device, precision):
                    run.progress.baseline["groups"] = task_routing.by_group(
                        runner, model, eval_features, rows.eval, tasks
                    )
        if run.density is not None:
            run.progress.baseline["density"] = density.measure(run.density, model, runner, eval_features, device)
        # A new head only (an adapter a job starts from brings a trained one; a combination trains nothing).
        if task.has_labels and params.get("probe_head") and new_modules and not job.start_from:
            phase(sink, f"fitting the new head to {len(train_features):,} rows' features (linear probe)")
            run.probe = probe_head(run, new_modules)
    return run


def _tasks(job: TrainSpec, rows) -> task_routing.Tasks:
    if job.start_from and task_routing.read(job.start_from.folder):
        raise TrainingError(
            BAD_PARAMS,
            "the adapter to start from already has a task per group; start a task per group from a one-task adapter "
            "or from the base model",
        )
    evaluation = (job.eval_file, job.eval_format) if job.eval_file else None
    return task_routing.assign(job.group_column, rows, (job.train_file, job.train_format), evaluation)


def _facts(task: Task, train_rows: int, num_labels: int, **more) -> defaults.Facts:
    return defaults.Facts(
        generative=task.generative, has_labels=task.has_labels, train_rows=train_rows, num_labels=num_labels, **more
    )


def _token_length(feature: dict) -> int:
    """What max_length must hold of one encoded row: its input, and a seq2seq target (cut to it too)."""
    labels = feature.get("labels")
    return max(len(feature["input_ids"]), len(labels) if labels is not None else 0)


def _prompt_length(feature: dict) -> int | None:
    """SFT: the tokens before the first one learned (labels -100 on the prompt); None for other tasks."""
    labels = feature.get("labels")
    if labels is None or len(labels) != len(feature["input_ids"]):
        return None
    return next((i for i, label in enumerate(labels) if label != -100), len(labels))


def _runner(job: TrainSpec, task: Task, tokenizer, labels, device, limit, max_length: int):
    runner = task.runner(
        tokenizer=tokenizer,
        labels=labels,
        options=task.options(job),
        max_length=max_length,
        batch_size=job.micro_batch_size,
        device=device,
        position_limit=limit,
    )
    runner.answer_logits_only = job.params.get("answer_logits_only", True)
    runner.length_grouped = runner.length_grouped and job.params.get("group_by_length", True)
    return runner


def _checkpoint_activations(model) -> None:
    """Recompute each block's activations in the backward pass instead of keeping them. The non-reentrant
    variant needs no trainable input, so it works under frozen embeddings (every PEFT method)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if not getattr(base, "supports_gradient_checkpointing", False):
        raise TrainingError(BAD_PARAMS, f"{type(base).__name__} does not support gradient checkpointing; turn it off")
    kwargs = {"use_reentrant": False}
    if hasattr(base, "activation_checkpointing_enable"):  # transformers >= 5.2x; the older name goes in v6
        base.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    base.config.use_cache = False


def _head_parameters(model, new_modules) -> frozenset:
    """The trainable parameters of the freshly initialised modules (a classifier head): peft keeps its trained
    copy under modules_to_save, full fine-tuning trains the module itself."""
    prefixes = tuple(f"{name}." for name in new_modules)
    return frozenset(
        parameter
        for name, parameter in model.named_parameters()
        if parameter.requires_grad and any(f".{prefix}" in f".{name}" for prefix in prefixes)
    )


def _finish(run: Run) -> FitResult:
    """The report, the adapter folder and the done event."""
    losses = run.progress.epoch_losses
    metrics = dict(run.evaluation["metrics"])
    if losses:  # none in a combination job, which trains nothing
        metrics["train_loss"] = sum(losses) / len(losses)
    parents = combine_run.evaluate_parents(run) if run.spec.combine else None
    report = build_report(run, metrics)
    if run.probe:
        report["head_probe"] = run.probe
    if run.density is not None:
        report["activation_density"] = {
            "before": run.progress.baseline.get("density"),
            "after": density.measure(run.density, run.model, run.runner, run.eval_features, run.device),
            "loss_weight": run.spec.params.get("density_loss") or 0.0,
            "layers": len(run.density.modules),
        }
        run.density.remove()  # the saved adapter and the returned model carry no hooks
    for regulariser in run.regularisers:
        regulariser.remove()
    if run.pruner is not None:
        report["pruning"] = pruned = run.pruner.report()
        run.pruner.remove()
        if pruned:  # the adapter saved is the pruned one: its count is what compare and the leaderboard show
            report["trainable_params"] = pruned["trainable_after"]
            report["efficiency"]["trainable_share"] = pruned["trainable_after"] / run.total_params
    if run.base_pruner is not None:
        report["base_pruning"] = cut = run.base_pruner.report()
        run.base_pruner.remove()
        if cut:  # a smaller model, and the adapter's factors on the cut rows and columns went with them
            trainable, total = _count_parameters(run.model)
            cut.update(total_before=run.total_params, total_after=total)
            report["trainable_params"] = trainable
            report["efficiency"]["trainable_share"] = trainable / run.total_params
    if parents is not None:
        report["combination"] = combine_run.report_section(run, parents)
    if run.tasks is not None:
        phase(run.sink, f"scoring each '{run.tasks.column}' alone")
        with devices.autocast(run.device, run.precision):
            after = task_routing.by_group(run.runner, run.model, run.eval_features, run.rows.eval, run.tasks)
        before = run.progress.baseline.get("groups") or {}
        started = run.spec.start_from is not None
        report.update(task_routing.report_section(run.tasks, before, after, started_from_adapter=started))
    phase(run.sink, "saving the adapter")
    plan = run.base_pruner.plan() if run.base_pruner is not None else None
    adapter_dir = save_adapter(run.model, run.tokenizer, run.spec, run.labels, report, base_plan=plan, tasks=run.tasks)
    report["efficiency"]["adapter_bytes"] = sum(p.stat().st_size for p in adapter_dir.rglob("*") if p.is_file())
    done = {"event": "done", "adapter_dir": str(adapter_dir.resolve()), "metrics": metrics, "report": report}
    run.sink.emit(done)
    return FitResult(model=run.model, tokenizer=run.tokenizer, labels=run.labels, adapter_dir=adapter_dir, done=done)


def run(spec: dict, sink: EventSink, should_stop: Callable[[], bool] | None = None) -> dict:
    """Train one job. Returns the done event (or the preempted one, see fit()); on failure emits an error event
    and raises TrainingError. An out-of-memory error event names the micro-batch size that failed."""
    try:
        if isinstance(spec, dict) and spec.get("group_column") and not _routes_tasks(spec):  # groups.py
            from .groups import fit_groups

            result = fit_groups(spec, sink, should_stop, fit)
        else:
            result = fit(spec, sink, should_stop)
    except Exception as exc:
        micro_batch_size = _micro_batch_size(spec) if is_out_of_memory(exc) else None
        error = classify_failure(exc, micro_batch_size)
        sink.emit(error_event(error, micro_batch_size))
        if error is exc:
            raise
        raise error from exc
    return result.done or result.preempted


def _routes_tasks(spec: dict) -> bool:
    """A group column read as a task per group (task_routing.py) rather than one adapter per group."""
    from .methods import UnknownMethodError, get_method

    try:
        method = get_method(spec.get("method"))
    except UnknownMethodError:
        return False  # fit() refuses an unknown method with the reason
    return task_routing.routes_tasks(method, spec.get("group_column"))


def _micro_batch_size(spec: dict) -> int | None:
    try:
        return parse_spec(spec).micro_batch_size
    except TrainingError:
        return None
