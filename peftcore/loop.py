"""The training loop: optimizer steps over micro-batches, an evaluation after each epoch that keeps the best
weights and stops early once the held-out score stops improving, checkpoints when due, and a stop request
honoured after any step. It knows no task: the run's task Runner encodes, batches, scores and evaluates."""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from . import checkpoints, defaults, devices
from .checkpoints import Progress
from .distributed import Group
from .errors import BAD_PARAMS, Preempted, TrainingError
from .events import EventSink, phase
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
    evaluation: dict = field(default_factory=dict)  # the final one's (of the best weights)
    best_weights: dict | None = None  # the best evaluation's trainable weights, when they differ from the model's
    head: frozenset = frozenset()  # the parameters of the new head (their own learning rate)
    precision: str = "fp32"  # devices.py: bf16 runs the forward passes under autocast
    group: Group = field(default_factory=Group)  # the processes training this job together (distributed.py)
    clock: tuple[float, float] = (0.0, 0.0)  # (monotonic time the loop started, train seconds before it)
    last_checkpoint: tuple[int, float] = (0, 0.0)  # (step, monotonic time)
    probe: dict | None = None  # the head's linear probe before the first step (probe.py), for the report
    density: Any = None  # density.DensityMeter when the density loss is on or the density is reported
    # Losses on each micro-batch's forward pass (DEFT's density, BA-LoRA's regularisers): start(chunk) before the
    # task's forward pass, penalty(chunk) after it; remove() when training ends.
    regularisers: list = field(default_factory=list)
    pruner: Any = None  # light_peft.RankPruner when the run prunes its adapter's ranks
    base_pruner: Any = None  # base_pruning.BasePruner when it prunes the base model's heads and channels
    tasks: Any = None  # task_routing.Tasks: a group column's values as the adapter's tasks


def make_optimizer(
    model,
    learning_rate: float,
    weight_decay: float,
    head: frozenset = frozenset(),
    head_rate: float | None = None,
    galore: dict | None = None,
):
    # Only true matrices are decayed: pulling biases, norms or (IA)^3 scaling vectors to zero harms them. The new
    # head (`head`: its parameters) starts from random weights and learns at head_rate when one is given.
    # galore ({rank, scale, update_gap}): the body's matrices keep their moments in a low-rank projection.
    groups: dict[tuple[bool, bool], list] = {}
    for parameter in model.parameters():
        if parameter.requires_grad:
            is_matrix = parameter.ndim >= 2 and min(parameter.shape) > 1
            in_head = head_rate is not None and parameter in head
            groups.setdefault((in_head, is_matrix), []).append(parameter)
    order = [(False, True), (False, False), (True, True), (True, False)]  # the body's rate is the one reported
    param_groups = [
        {
            "params": groups[key],
            "weight_decay": weight_decay if key[1] else 0.0,
            "lr": head_rate if key[0] else learning_rate,
            **(galore if galore and key == (False, True) else {}),
        }
        for key in order
        if key in groups
    ]
    if galore:
        from .galore import GaLoreAdamW

        return GaLoreAdamW(param_groups, lr=learning_rate)
    return torch.optim.AdamW(param_groups, lr=learning_rate)


def score(metrics: dict) -> list[float]:
    """How good an evaluation is, higher better: accuracy where the task has it (ties: the lower loss), else the
    lower evaluation loss."""
    loss = metrics.get("eval_loss")
    # finite even without a loss: a checkpoint's JSON stores it (json_safe would turn -inf into null)
    loss = -loss if isinstance(loss, (int, float)) and math.isfinite(loss) else -1e30
    for key in ("accuracy", "reward_accuracy"):  # preference tuning: the share of pairs ranked right
        if key in metrics:
            return [metrics[key], loss]
    return [loss]


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
    picked = baseline_rows(len(run.eval_features), run.runner.sample_rows)
    with devices.autocast(run.device, run.precision):
        evaluation = run.runner.evaluate(
            run.model, [run.eval_features[i] for i in picked], [run.rows.eval[i] for i in picked], final=True
        )
    samples = [{"row": s["row"], "generation": s["generation"]} for s in evaluation["report"].get("samples", [])]
    run.progress.baseline = {"metrics": evaluation["metrics"], "samples": samples, "rows": len(picked)}
    run.sink.emit({"event": "eval", "step": 0, "epoch": 0, "metrics": evaluation["metrics"]})


def baseline_rows(total: int, keep_first: int, most: int | None = None) -> list[int]:
    """The evaluation rows the untrained model is measured on: all of them up to `most`; beyond, the first
    `keep_first` (the rows whose samples the report shows before and after) and the rest evenly spaced over the
    set, so a file sorted by label still gives every label its share."""
    most = most or defaults.BASELINE_ROWS
    if total <= most:
        return list(range(total))
    first = min(keep_first, most)
    rest, spread = total - first, most - first
    return list(range(first)) + [first + (i * rest) // spread for i in range(spread)]


def resume(run: Run, state: dict) -> None:
    """Continue from a checkpoint: its weights, optimizer, schedule, RNGs and place in the data; its baseline
    evaluation stands in for a new one."""
    folder = run.spec.resume_from
    if state.get("total_steps") != run.total_steps or not 0 < state["step"] <= run.total_steps:
        raise TrainingError(
            BAD_PARAMS,
            f"the checkpoint {folder} is for a run of {state.get('total_steps')} steps; this job has {run.total_steps}",
        )
    run.best_weights = checkpoints.restore(
        folder, state, model=run.model, optimizer=run.optimizer, scheduler=run.scheduler, generator=run.generator
    )
    run.progress = checkpoints.progress_of(folder, state)
    if run.best_weights is None and run.progress.best and run.progress.best["step"] == state["step"]:
        run.best_weights = checkpoints.snapshot(run.model)  # the checkpoint's own weights are the best
    run.resumed_from_step = state["step"]
    run.sink.emit({"event": "resumed", "step": state["step"], "epoch": _epoch(run)})


def _epoch(run: Run) -> float:
    return round(run.progress.step / run.steps_per_epoch, 4)


def _elapsed(run: Run) -> float:
    started, before = run.clock
    return before + time.monotonic() - started


def train_loop(run: Run) -> dict | None:
    """The optimizer steps, an evaluation after each epoch, checkpoints when due; then the best evaluation's
    weights restored and evaluated in full. Returns the preempted event when should_stop() turned true, else
    None."""
    spec, p, sink = run.spec, run.progress, run.sink
    batch_size, epochs = spec.params["batch_size"], spec.params["epochs"]
    run.clock = (time.monotonic(), p.train_seconds)
    run.last_checkpoint = (p.step, time.monotonic())
    clock = StepClock()
    phase(sink, "training")
    run.model.train()
    for epoch in range(p.current_epoch, epochs + 1):
        if p.order is None or p.current_epoch != epoch:  # a new epoch (not one a checkpoint left half done)
            p.current_epoch, p.position, p.epoch_losses = epoch, 0, []
            p.order = torch.randperm(len(run.train_features), generator=run.generator).tolist()
            if run.runner.length_grouped:
                p.order = length_grouped(p.order, run.train_features, batch_size, run.generator)
        while p.position < run.steps_per_epoch:
            first = p.position * batch_size
            stepping = time.monotonic()
            loss, learning_rate = _optimizer_step(run, p.order[first : first + batch_size])
            clock.step(time.monotonic() - stepping)
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
                    # this epoch's evaluation and each later one's (early stopping may end sooner)
                    "eta_seconds": clock.eta(run.total_steps - p.step, epochs - epoch + 1),
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
            if run.group.agree(run.should_stop()):
                if run.last_checkpoint[0] != p.step:
                    _checkpoint(run)
                return preempted(sink, p.step)
        evaluating = time.monotonic()
        phase(sink, f"evaluating epoch {epoch} of {epochs} on {len(run.eval_features):,} rows")
        with devices.autocast(run.device, run.precision):
            run.evaluation = run.runner.evaluate(run.model, run.eval_features, run.rows.eval, final=epoch == epochs)
        phase(sink, "training")
        clock.evaluation(time.monotonic() - evaluating)
        p.eval_seconds += time.monotonic() - evaluating
        sink.emit({"event": "eval", "step": p.step, "epoch": epoch, "metrics": run.evaluation["metrics"]})
        if run.group.agree(_keep_best(run, epoch)) and epoch < epochs:  # rank 0 decides for every rank
            sink.emit(
                {
                    "event": "early_stop",
                    "step": p.step,
                    "epoch": epoch,
                    "best_epoch": p.best["epoch"],
                    "patience": spec.params["patience"],
                }
            )
            break
    _finish_with_best(run, final_done=p.current_epoch == epochs and p.best and p.best["step"] == p.step)
    p.train_seconds = _elapsed(run)
    run.model.eval()
    return None


class StepClock:
    """An ETA that is right from the first steps: the median of this process's recent step times (the first
    step, which pays for lazy initialisation, left out) times the steps left, plus the evaluations left at the
    last one's measured time (none counted before the first has run)."""

    WINDOW = 20

    def __init__(self):
        self.steps: list[float] = []
        self.last_evaluation: float | None = None
        self.first = True

    def step(self, seconds: float) -> None:
        if self.first:
            self.first = False
            return
        self.steps = [*self.steps[-(self.WINDOW - 1) :], seconds]

    def evaluation(self, seconds: float) -> None:
        self.last_evaluation = seconds

    def eta(self, steps_left: int, evaluations_left: int) -> float | None:
        if not self.steps:
            return None
        per_step = statistics.median(self.steps)
        return round(per_step * steps_left + (self.last_evaluation or 0.0) * evaluations_left, 1)


def _keep_best(run: Run, epoch: int) -> bool:
    """Remember this evaluation if it is the best so far (its weights too); True when training should stop: the
    patience ran out."""
    p, metrics = run.progress, run.evaluation["metrics"]
    current = score(metrics)
    if run.on_step is not None:
        # A method whose schedule reshapes the adapter as it goes (AdaLoRA's rank budget) cannot go back to an
        # earlier epoch's weights under its latest shape: it keeps its last, and trains every epoch.
        p.best = {"step": p.step, "epoch": epoch, "score": current, "metrics": metrics}
        return False
    if p.best is None or current > p.best["score"]:
        p.best = {"step": p.step, "epoch": epoch, "score": current, "metrics": metrics}
        p.stale_evals = 0
        run.best_weights = checkpoints.snapshot(run.model)
        return False
    p.stale_evals += 1
    patience = run.spec.params.get("patience") or 0
    return bool(patience) and p.stale_evals >= patience


def _finish_with_best(run: Run, *, final_done: bool) -> None:
    """Put the best evaluation's weights back and give them the final (full) evaluation, unless the model already
    holds them and was just evaluated in full."""
    p = run.progress
    if p.best is None:
        return
    if run.best_weights is not None and p.best["step"] != p.step:
        checkpoints.load_snapshot(run.model, run.best_weights)
        run.sink.emit({"event": "best_restored", "step": p.best["step"], "epoch": p.best["epoch"]})
    if not final_done:
        phase(run.sink, f"evaluating the best epoch ({p.best['epoch']}) in full")
        evaluating = time.monotonic()
        with devices.autocast(run.device, run.precision):
            run.evaluation = run.runner.evaluate(run.model, run.eval_features, run.rows.eval, final=True)
        p.eval_seconds += time.monotonic() - evaluating


def length_grouped(order: list[int], features: list, batch_size: int, generator, span: int = 50) -> list[int]:
    """The shuffled order regrouped so each batch holds rows of similar length (less padding): within windows of
    `span` batches the rows are sorted by length and cut into batches, then the full batches are shuffled (the
    generator's next draw) and a short last batch stays last. transformers' group_by_length does the same."""
    window = batch_size * span
    batches = []
    for first in range(0, len(order), window):
        rows = sorted(order[first : first + window], key=lambda i: -len(features[i]["input_ids"]))
        batches += [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]
    last = [batches.pop()] if batches and len(batches[-1]) < batch_size else []
    shuffled = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()] + last
    return [row for batch in shuffled for row in batch]


def _optimizer_step(run: Run, rows: list[int]) -> tuple[float, float]:
    """One optimizer step over `rows`, run as micro-batches whose gradients add up to the whole batch's: each
    chunk's summed loss is divided by what the whole batch's loss averages over (the runner's loss units: rows,
    labelled tokens). Returns (the batch's loss, the learning rate used)."""
    runner, model, micro, group = run.runner, run.model, run.spec.micro_batch_size, run.group
    features = [run.train_features[i] for i in group.shard(rows)]  # with several ranks, this one's share
    chunks = [runner.collate(features[i : i + micro]) for i in range(0, len(features), micro)]
    units = max(group.sum([sum(runner.loss_units(chunk) for chunk in chunks)])[0], 1)
    run.optimizer.zero_grad(set_to_none=True)
    value, tokens = 0.0, 0
    for chunk in chunks:
        mask = chunk.get("attention_mask")
        tokens += int(mask.sum()) if mask is not None else chunk["input_ids"].numel()
        chunk = {key: tensor.to(run.device) for key, tensor in chunk.items()}
        _inject_out_of_memory(len(chunk["input_ids"]))
        with devices.autocast(run.device, run.precision):
            for regulariser in run.regularisers:
                regulariser.start(chunk)
            loss = runner.summed_loss(model, chunk) / units
            for (
                regulariser
            ) in run.regularisers:  # a batch mean: each micro-batch weighted by its share of the loss units
                loss = loss + regulariser.penalty(chunk) * runner.loss_units(chunk) / units
        loss.backward()
        value += loss.item()
    extra_loss = run.spec.method.extra_loss
    if extra_loss is not None and group.main:  # a penalty on the weights, not the data: once per optimizer step
        extra = extra_loss(model)
        if torch.is_tensor(extra) and extra.requires_grad:
            extra.backward()
        value += float(extra)
    value, tokens = group.sum([value, tokens])  # the whole batch's, on every rank
    run.progress.train_tokens += int(tokens)
    if not math.isfinite(value):
        raise TrainingError(
            BAD_PARAMS,
            f"training diverged at step {run.progress.step + 1} (the loss became {value}); try a lower learning rate",
        )
    trainable = [p for p in model.parameters() if p.requires_grad]
    group.sum_gradients(trainable)
    torch.nn.utils.clip_grad_norm_(trainable, MAX_GRAD_NORM)
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
    if not run.group.main:  # one writer: rank 0's weights are every rank's
        return
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
        # the best weights only when the model has moved past them (else they are the trainable weights)
        best=run.best_weights if p.best and p.best["step"] != p.step else None,
    )
    p.checkpoint_seconds += time.monotonic() - began
    run.last_checkpoint = (p.step, time.monotonic())
    run.sink.emit({"event": "checkpoint", "step": p.step, "epoch": _epoch(run), "path": str(path)})
