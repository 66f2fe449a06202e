"""What a run adds beyond its method's build, before the first step: a method's initialisation from the
training rows (LoRA's EVA), the optimiser's kind (GaLore), Light-PEFT's pruning and the batch regularisers (DEFT's density loss for any
method, BA-LoRA's for LoRA) that the training loop adds to each micro-batch's loss (loop.Run.regularisers)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import ba_lora, base_pruning, density, light_peft
from .errors import BAD_PARAMS, TrainingError
from .events import EventSink, phase
from .loop import Run
from .spec import TrainSpec
from .tasks import Task

# Training batches a data-driven initialisation reads (EVA stops early once the directions settle).
DATA_INIT_BATCHES = 16
NATURAL_HISTORY = 10  # Natural GaLore's window of recent projected gradients per matrix


@dataclass
class TrainingSample:
    """What a method's data-driven start reads (Method.data_init): the first DATA_INIT_BATCHES training batches,
    always the same ones, and the task's loss on a batch."""

    runner: object
    features: list
    batch_size: int
    device: object
    announce: Callable[[], None]
    resuming: bool  # the checkpoint brings the adapter's weights; only a start that changes the base reruns

    def _batches(self, labels: bool) -> list[dict]:
        self.announce()
        size, rows = self.batch_size, min(len(self.features), self.batch_size * DATA_INIT_BATCHES)
        return [
            {
                k: v.to(self.device)
                for k, v in self.runner.collate(self.features[i : i + size]).items()
                if labels or k != "labels"
            }
            for i in range(0, rows, size)
        ]

    def inputs(self) -> list[dict]:
        """Model inputs only: without labels, EVA reads every real token's activations (the attention mask)."""
        return self._batches(labels=False)

    def labelled(self) -> list[dict]:
        return self._batches(labels=True)

    def loss(self, model, batch: dict):
        """The task's mean loss on a batch (as the training loop weighs it)."""
        return self.runner.summed_loss(model, batch) / max(self.runner.loss_units(batch), 1)


def data_init(job: TrainSpec, model, runner, features: list, sink: EventSink, device, *, resuming: bool) -> None:
    """The method's initialisation from the training rows (LoRA's EVA, LoRA-GA), on up to DATA_INIT_BATCHES
    batches, read only when the method's settings ask for it."""
    rows = min(len(features), job.params["batch_size"] * DATA_INIT_BATCHES)
    sample = TrainingSample(
        runner,
        features,
        job.params["batch_size"],
        device,
        lambda: phase(sink, f"initialising {job.method.label} from {rows:,} training rows"),
        resuming,
    )
    try:
        job.method.data_init(model, job.method_params, sample)
    except (ValueError, RuntimeError) as exc:
        raise TrainingError(BAD_PARAMS, f"{job.method.label}: initialising from the data failed: {exc}") from exc


def add_pruning(run: Run, state: dict | None) -> None:
    """Light-PEFT's pruning of the adapter's ranks and of the base model's heads and channels when the run asks for
    it: a cut a checkpoint already made is made again first (so its weights load), then each pruner sums
    importance and cuts at its step (light_peft.py, base_pruning.py)."""
    params = run.spec.params
    if not params.get("prune_ranks") and not base_pruning.wanted(params):
        return
    at_step = light_peft.prune_step(params["prune_after"], run.total_steps, run.steps_per_epoch)
    if at_step is None:
        raise TrainingError(
            BAD_PARAMS,
            f"pruning needs at least {light_peft.FIRST_CUT} steps in the first epoch to measure what to cut, and "
            f"this run has {run.steps_per_epoch}: use a smaller batch size, more rows, or no pruning",
        )
    step = (state or {}).get("step", 0)
    if base_pruning.wanted(params):
        problem = base_pruning.architecture_problem(run.model) or (
            "pruning the base model works on a run that starts from the base model" if run.spec.start_from else None
        )
        first = next(iter(base_pruning.blocks(run.model).values()), None)
        if not problem and first is not None and "kept" not in ((state or {}).get("base_pruning") or {}):
            problem = base_pruning.heads_problem(
                params.get("prune_heads") or 0, first.heads, first.heads // first.group
            )
        if problem:
            raise TrainingError(BAD_PARAMS, problem)
        saved = (state or {}).get("base_pruning") or {}
        if "kept" in saved:
            base_pruning.apply_plan(run.model, saved["kept"])
        heads, channels = params.get("prune_heads") or 0.0, params.get("prune_channels") or 0.0
        run.base_pruner = base_pruning.BasePruner(run, heads, channels, at_step, saved=saved, step=step)
    if params.get("prune_ranks"):
        saved = (state or {}).get("pruning") or {}
        if "kept" in saved:
            light_peft.apply_kept(run.model, saved["kept"])
        run.pruner = light_peft.RankPruner(run, params["prune_ranks"], at_step, saved=saved, step=step)


def galore(params: dict) -> dict | None:
    """GaLore's settings for loop.make_optimizer, when the run asks for that optimiser."""
    if params.get("optimizer") not in ("galore", "natural_galore"):
        return None
    return {
        "rank": params["galore_rank"],
        "scale": params["galore_scale"],
        "update_gap": params["galore_update_gap"],
        # Natural GaLore's Fisher estimate reads this many recent projected gradients per matrix
        "history": NATURAL_HISTORY if params["optimizer"] == "natural_galore" else 0,
    }


def add_regularisers(run: Run, task: Task, new_modules) -> None:
    """DEFT's density loss (any method) and BA-LoRA's regularisers (LoRA's options, classification)."""
    params, method_params = run.spec.params, run.spec.method_params
    try:
        if params.get("density_loss") or params.get("measure_density"):
            run.density = density.DensityMeter(run.model)
            if params.get("density_loss"):
                run.regularisers.append(density.DensityLoss(run.density, params["density_loss"]))
        bias = ba_lora.regulariser(run.model, method_params, new_modules, task.has_labels)
    except ValueError as exc:
        raise TrainingError(BAD_PARAMS, str(exc)) from exc
    if bias is not None:
        run.regularisers.append(bias)
