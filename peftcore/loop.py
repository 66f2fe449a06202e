"""The training loop: optimizer steps over micro-batches, an evaluation after each epoch, checkpoints when due,
and a stop request honoured after any step. It knows no task: the run's task Runner encodes, batches, scores
and evaluates."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from . import checkpoints
from .checkpoints import Progress
from .errors import BAD_PARAMS, Preempted, TrainingError
from .events import EventSink
from .spec import TrainSpec
from .tasks import Rows, Runner

MAX_GRAD_NORM = 1.0


@dataclass
class Run:
    """One run's moving parts, handed between fit()'s phases."""

    spec: TrainSpec
    sink: EventSink
    should_stop: Callable[[], bool]
    fingerprint: dict
    runner: Runner
    labels: list[str]
    rows: Rows
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


def make_optimizer(model, learning_rate: float, weight_decay: float):
    # Only true matrices are decayed: pulling biases, norms or (IA)^3 scaling vectors to zero harms them.
    decay, no_decay = [], []
    for parameter in model.parameters():
        if parameter.requires_grad:
            is_matrix = parameter.ndim >= 2 and min(parameter.shape) > 1
            (decay if is_matrix else no_decay).append(parameter)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=learning_rate)


def stop_point(stop: Callable[[], bool]) -> None:
    if stop():
        raise Preempted()


def preempted(sink: EventSink, step: int) -> dict:
    event = {"event": "preempted", "step": step}
    sink.emit(event)
    return event


def baseline(run: Run) -> None:
    # The untouched model first (a new head guesses, a base model writes what it would without training), so
    # the report shows what training gained. Evaluation draws no random numbers, so training is the same with
    # or without it.
    evaluation = run.runner.evaluate(run.model, run.eval_features, run.rows.eval, final=True)
    samples = [{"row": s["row"], "generation": s["generation"]} for s in evaluation["report"].get("samples", [])]
    run.progress.baseline = {"metrics": evaluation["metrics"], "samples": samples}
    run.sink.emit({"event": "eval", "step": 0, "epoch": 0, "metrics": evaluation["metrics"]})


def resume(run: Run, state: dict) -> None:
    """Continue from a checkpoint: its weights, optimizer, schedule, RNGs and place in the data; its baseline
    evaluation stands in for a new one."""
    folder = run.spec.resume_from
    if state.get("total_steps") != run.total_steps or not 0 < state["step"] <= run.total_steps:
        raise TrainingError(
            BAD_PARAMS,
            f"the checkpoint {folder} is for a run of {state.get('total_steps')} steps; this job has {run.total_steps}",
        )
    checkpoints.restore(
        folder, state, model=run.model, optimizer=run.optimizer, scheduler=run.scheduler, generator=run.generator
    )
    run.progress = checkpoints.progress_of(folder, state)
    run.resumed_from_step = state["step"]
    run.sink.emit({"event": "resumed", "step": state["step"], "epoch": _epoch(run)})


def _epoch(run: Run) -> float:
    return round(run.progress.step / run.steps_per_epoch, 4)


def _elapsed(run: Run) -> float:
    started, before = run.clock
    return before + time.monotonic() - started


def train_loop(run: Run) -> dict | None:
    """The optimizer steps, an evaluation after each epoch, checkpoints when due. Returns the preempted event
    when should_stop() turned true, else None."""
    spec, p, sink = run.spec, run.progress, run.sink
    batch_size, epochs = spec.params["batch_size"], spec.params["epochs"]
    run.clock = (time.monotonic(), p.train_seconds)
    run.last_checkpoint = (p.step, time.monotonic())
    run.model.train()
    for epoch in range(p.current_epoch, epochs + 1):
        if p.order is None or p.current_epoch != epoch:  # a new epoch (not one a checkpoint left half done)
            p.current_epoch, p.position, p.epoch_losses = epoch, 0, []
            p.order = torch.randperm(len(run.train_features), generator=run.generator).tolist()
        while p.position < run.steps_per_epoch:
            first = p.position * batch_size
            loss, learning_rate = _optimizer_step(run, p.order[first : first + batch_size])
            p.step, p.position = p.step + 1, p.position + 1
            p.epoch_losses.append(loss)
            sink.emit(
                {
                    "event": "progress",
                    "step": p.step,
                    "total_steps": run.total_steps,
                    "epoch": _epoch(run),
                    "loss": loss,
                    "learning_rate": learning_rate,
                }
            )
            if checkpoints.is_due(
                p.step,
                run.total_steps,
                run.last_checkpoint,
                every_steps=spec.checkpoint_every_steps,
                every_seconds=spec.checkpoint_every_seconds,
            ):
                _checkpoint(run)
            if run.should_stop():
                if run.last_checkpoint[0] != p.step:
                    _checkpoint(run)
                return preempted(sink, p.step)
        evaluating = time.monotonic()
        run.evaluation = run.runner.evaluate(run.model, run.eval_features, run.rows.eval, final=epoch == epochs)
        p.eval_seconds += time.monotonic() - evaluating
        sink.emit({"event": "eval", "step": p.step, "epoch": epoch, "metrics": run.evaluation["metrics"]})
    p.train_seconds = _elapsed(run)
    run.model.eval()
    return None


def _optimizer_step(run: Run, rows: list[int]) -> tuple[float, float]:
    """One optimizer step over `rows`, run as micro-batches whose gradients add up to the whole batch's: each
    chunk's summed loss is divided by what the whole batch's loss averages over (the runner's loss units: rows,
    labelled tokens). Returns (the batch's loss, the learning rate used)."""
    runner, model, micro = run.runner, run.model, run.spec.micro_batch_size
    features = [run.train_features[i] for i in rows]
    chunks = [runner.collate(features[i : i + micro]) for i in range(0, len(features), micro)]
    units = max(sum(runner.loss_units(chunk) for chunk in chunks), 1)
    run.optimizer.zero_grad(set_to_none=True)
    value = 0.0
    for chunk in chunks:
        mask = chunk.get("attention_mask")
        run.progress.train_tokens += int(mask.sum()) if mask is not None else chunk["input_ids"].numel()
        chunk = {key: tensor.to(run.device) for key, tensor in chunk.items()}
        _inject_out_of_memory(len(chunk["input_ids"]))
        loss = runner.summed_loss(model, chunk) / units
        loss.backward()
        value += loss.item()
    extra_loss = run.spec.method.extra_loss
    if extra_loss is not None:  # a penalty on the weights, not the data: once per optimizer step
        extra = extra_loss(model)
        if torch.is_tensor(extra) and extra.requires_grad:
            extra.backward()
        value += float(extra)
    if not math.isfinite(value):
        raise TrainingError(
            BAD_PARAMS,
            f"training diverged at step {run.progress.step + 1} (the loss became {value}); try a lower learning rate",
        )
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], MAX_GRAD_NORM)
    learning_rate = run.scheduler.get_last_lr()[0]
    run.optimizer.step()
    if run.on_step is not None:
        run.on_step(model, run.progress.step)  # before the next zero_grad: it may read this step's gradients
    run.scheduler.step()
    return value, learning_rate


def _inject_out_of_memory(rows: int) -> None:
    # Test fault injection: with PEFTCORE_FAULT_OOM_ABOVE=N a training forward pass on more than N rows raises a
    # real torch.OutOfMemoryError, so the runner's out-of-memory handling can be tested on machines with no GPU.
    limit = os.environ.get("PEFTCORE_FAULT_OOM_ABOVE")
    if limit and rows > int(limit):
        raise torch.OutOfMemoryError(
            f"out of memory (injected by PEFTCORE_FAULT_OOM_ABOVE={limit}: a forward pass on {rows} rows)"
        )


def _checkpoint(run: Run) -> None:
    began = time.monotonic()
    p = run.progress
    state = {
        **asdict(p),
        "train_seconds": _elapsed(run),
        "epoch": _epoch(run),
        "total_steps": run.total_steps,
        "micro_batch_size": run.spec.micro_batch_size,
        "fingerprint": run.fingerprint,
    }
    path = checkpoints.write(
        run.spec.checkpoint_dir,
        p.step,
        model=run.model,
        optimizer=run.optimizer,
        scheduler=run.scheduler,
        generator=run.generator,
        state=state,
    )
    p.checkpoint_seconds += time.monotonic() - began
    run.last_checkpoint = (p.step, time.monotonic())
    run.sink.emit({"event": "checkpoint", "step": p.step, "epoch": _epoch(run), "path": str(path)})
