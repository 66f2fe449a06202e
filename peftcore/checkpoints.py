"""Checkpoints: everything a training run needs to continue exactly where it stopped, with no pickle anywhere
(a checkpoint may come back from a blob store, and unpickling runs code).

A checkpoint is a folder <checkpoint_dir>/step-<N>/:
  trainable.safetensors  every trainable parameter by name, plus state a method keeps outside its parameters
                         (AdaLoRA's importance scores, as "adalora/<score>/<parameter name>")
  optimizer.safetensors  the optimizer's per-parameter tensors, as "<parameter name>/<key>"
  rng.safetensors        the torch CPU RNG, the data-order generator and, where there are any, the CUDA RNGs
  state.json             the rest: format version, step, the optimizer's groups and step counts, the scheduler,
                         Python's and NumPy's RNGs, and what the training loop hands in (loop.py: its Progress,
                         timings and the job's fingerprint)
It is written under a temporary name and renamed once complete, so a folder named step-N is always whole.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .errors import BAD_PARAMS, INTERNAL, TrainingError
from .events import json_safe

FORMAT_VERSION = 1
STATE, TRAINABLE, OPTIMIZER, RNG = "state.json", "trainable.safetensors", "optimizer.safetensors", "rng.safetensors"
BEST = "best.safetensors"  # the trainable weights of the best evaluation so far, when they differ from the latest
ADALORA_SCORES = ("ipt", "exp_avg_ipt", "exp_avg_unc")


def folder_name(step: int) -> str:
    return f"step-{step}"


def write(
    checkpoint_dir: Path, step: int, *, model, optimizer, scheduler, generator, state: dict, best: dict | None = None
) -> Path:
    """Write the checkpoint of `step` and return its absolute folder. A folder of the same step left by an
    earlier attempt of the job is replaced (training is exactly resumable, so it held the same)."""
    from safetensors.torch import save_file

    checkpoint_dir = Path(checkpoint_dir)
    final, partial = checkpoint_dir / folder_name(step), checkpoint_dir / f".{folder_name(step)}.partial"
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    names = _trainable_names(model)
    trainable = {name: parameter.detach() for parameter, name in names.items()}
    allocator, allocator_json = _adalora_state(model)
    save_file(_plain({**trainable, **allocator}), str(partial / TRAINABLE))
    optimizer_tensors, optimizer_json = _optimizer_state(optimizer, names)
    save_file(_plain(optimizer_tensors), str(partial / OPTIMIZER))
    save_file(_plain(_rng_tensors(generator)), str(partial / RNG))
    if best:
        save_file(_plain(best), str(partial / BEST))
    import numpy as np

    numpy_state = np.random.get_state()
    full_state = {
        "format_version": FORMAT_VERSION,
        "step": step,
        **state,
        "optimizer": optimizer_json,
        "scheduler": _json_part(scheduler.state_dict()),
        "python_random": list(random.getstate()),
        "numpy_random": [numpy_state[0], numpy_state[1].tolist(), *numpy_state[2:]],
        "adalora": allocator_json,
    }
    (partial / STATE).write_text(json.dumps(json_safe(full_state), allow_nan=False), encoding="utf-8")
    if final.exists():
        shutil.rmtree(final)
    partial.rename(final)
    return final.resolve()


def read_state(folder: Path) -> dict:
    """The state.json of a checkpoint folder, checked to be one this code wrote and can read."""
    folder = Path(folder)
    if not folder.is_dir():
        raise TrainingError(BAD_PARAMS, f"cannot resume: the checkpoint folder {folder} does not exist")
    if not (folder / STATE).is_file():
        raise TrainingError(BAD_PARAMS, f"cannot resume: {folder} is not a checkpoint folder (it has no {STATE})")
    try:
        state = json.loads((folder / STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise _damaged(folder, f"{STATE} cannot be read ({exc})") from exc
    if not isinstance(state, dict) or not isinstance(state.get("step"), int):
        raise _damaged(folder, f"{STATE} is not a checkpoint state")
    if state.get("format_version") != FORMAT_VERSION:
        raise TrainingError(
            BAD_PARAMS,
            f"cannot resume: the checkpoint {folder} has format version "
            f"{state.get('format_version')!r}; this version reads {FORMAT_VERSION}",
        )
    missing = [name for name in (TRAINABLE, OPTIMIZER, RNG) if not (folder / name).is_file()]
    if missing:
        raise _damaged(folder, f"{', '.join(missing)} missing")
    return state


def check_fingerprint(folder: Path, state: dict, fingerprint: dict) -> None:
    """Refuse a checkpoint of another configuration: its weights and schedule would not fit this job."""
    saved, wanted = _flatten(state.get("fingerprint") or {}), _flatten(json_safe(fingerprint))
    differences = [
        f"{key} (checkpoint {saved.get(key)!r}, this job {wanted.get(key)!r})"
        for key in sorted(set(saved) | set(wanted))
        if saved.get(key) != wanted.get(key)
    ]
    if differences:
        raise TrainingError(
            BAD_PARAMS, f"the checkpoint {folder} belongs to a different configuration: {'; '.join(differences)}"
        )


def restore(folder: Path, state: dict, *, model, optimizer, scheduler, generator) -> dict | None:
    """Load a checkpoint (read_state gave `state`) into a freshly built model, optimizer, scheduler and data-order
    generator, and restore every RNG, so that training continues exactly as if it had never stopped. Returns the
    best evaluation's weights when the checkpoint kept them apart (else None)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    try:
        saved = load_file(str(folder / TRAINABLE))
        optimizer_tensors = load_file(str(folder / OPTIMIZER))
        rng = load_file(str(folder / RNG))
        best = load_file(str(folder / BEST)) if (folder / BEST).is_file() else None
    except (OSError, SafetensorError, ValueError) as exc:
        raise _damaged(folder, str(exc)) from exc
    try:
        names = _trainable_names(model)
        _load_trainable(names, {k: v for k, v in saved.items() if not k.startswith("adalora/")})
        _load_adalora(model, {k: v for k, v in saved.items() if k.startswith("adalora/")}, state.get("adalora"))
        _load_optimizer(optimizer, names, optimizer_tensors, state["optimizer"])
        scheduler.load_state_dict(dict(state["scheduler"]))
        torch.set_rng_state(rng["torch"])
        generator.set_state(rng["data_order"])
        if torch.cuda.is_available():
            torch.cuda.set_rng_state_all(
                [rng[f"cuda.{i}"] for i in range(torch.cuda.device_count()) if f"cuda.{i}" in rng]
            )
        version, internal, gauss = state["python_random"]
        random.setstate((version, tuple(internal), gauss))
        import numpy as np

        name, keys, *rest = state["numpy_random"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))
        return best
    except TrainingError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise _damaged(folder, f"{type(exc).__name__}: {exc}") from exc


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
    # The best evaluation so far ({"step", "epoch", "score", "metrics"}; its weights are BEST beside the state)
    # and how many evaluations in a row have not beaten it (early stopping, loop.py).
    best: dict | None = None
    stale_evals: int = 0
    # Light-PEFT's rank pruning (light_peft.py): {"importance": {layer: [sums]}} until the cut, then also "kept"
    pruning: dict | None = None
    # Light-PEFT's base pruning (base_pruning.py): {"importance": {"block|heads" or "block|ffn": [sums]}}, then
    # also "kept" (the plan), "at_step" and "before"
    base_pruning: dict | None = None


# checkpoints written before early stopping lack the first two, before rank or base pruning the last ones
OPTIONAL_PROGRESS = ("best", "stale_evals", "pruning", "base_pruning")


def progress_of(folder: Path, state: dict) -> Progress:
    """The Progress a checkpoint's state (read_state) recorded."""
    try:
        return Progress(
            **{
                name: state[name]
                for name in Progress.__dataclass_fields__
                if name in state or name not in OPTIONAL_PROGRESS
            }
        )
    except KeyError as exc:
        raise _damaged(folder, f"its state has no {exc}") from exc


def fingerprint(spec) -> dict:
    """What a checkpoint must share with the job (a spec.TrainSpec) resuming from it: everything that shapes the
    weights and the schedule. Not the micro-batch size (the same effective batch), nor paths that differ between
    workers."""
    from .tasks import get_task

    identity = {
        "task": spec.task,
        "method": spec.method.name,
        "method_params": spec.method_params,
        "params": dict(spec.params),
        "model": spec.model_path.name,
        "dataset_sha256": spec.metadata.get("dataset_sha256"),
        "eval_dataset_sha256": spec.metadata.get("eval_dataset_sha256"),
        "columns": [spec.text_column, spec.label_column, spec.input_column, spec.messages_column],
        "template": None,  # a key for every task, as checkpoints have always recorded it
        "start_from": spec.start_from.mode if spec.start_from else None,
    }
    if spec.group_column:  # a task per group (task_routing.py); older checkpoints have no such key
        identity["tasks_from"] = spec.group_column
    return {**identity, **get_task(spec.task).options(spec)}  # the task's own settings (SFT's template)


def is_due(
    step: int, total_steps: int, last: tuple[int, float], *, every_steps: int | None, every_seconds: float | None
) -> bool:
    """Whether to write a checkpoint after `step`; `last`: (step, monotonic time) of the last one."""
    if step >= total_steps or step == last[0]:  # the adapter is saved after the last step
        return False
    return bool(every_steps and step % every_steps == 0) or bool(
        every_seconds and time.monotonic() - last[1] >= every_seconds
    )


def _damaged(folder: Path, why: str) -> TrainingError:
    return TrainingError(INTERNAL, f"cannot resume: the checkpoint {folder} is damaged: {why}")


def _plain(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # safetensors wants contiguous tensors; it copies them to host memory itself.
    return {name: tensor.contiguous() for name, tensor in tensors.items()}


def _json_part(value: Any) -> Any:
    """The JSON-representable part of a state_dict (a scheduler's holds plain numbers and lists)."""
    if isinstance(value, dict):
        return {k: _json_part(v) for k, v in value.items() if _is_json(v)}
    return value


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value)
        return True
    except (TypeError, ValueError):
        return False


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: value}


def snapshot(model) -> dict[str, torch.Tensor]:
    """A copy of every trainable parameter, on the CPU (the best evaluation's weights, kept while training
    goes on)."""
    return {name: parameter.detach().to("cpu", copy=True) for parameter, name in _trainable_names(model).items()}


def load_snapshot(model, weights: dict[str, torch.Tensor]) -> None:
    _load_trainable(_trainable_names(model), weights)


def _trainable_names(model) -> dict[torch.nn.Parameter, str]:
    """{parameter: name} for the parameters that train (a parameter shared by two modules appears once)."""
    return {parameter: name for name, parameter in model.named_parameters() if parameter.requires_grad}


def _load_trainable(names: dict, saved: dict[str, torch.Tensor]) -> None:
    wanted = {name: parameter for parameter, name in names.items()}
    missing, unexpected = sorted(set(wanted) - set(saved)), sorted(set(saved) - set(wanted))
    wrong = [name for name in set(wanted) & set(saved) if saved[name].shape != wanted[name].shape]
    if missing or unexpected or wrong:
        shown = {"missing": missing, "unexpected": unexpected, "of another shape": sorted(wrong)}
        raise TrainingError(
            BAD_PARAMS,
            "cannot resume: the checkpoint's trained weights do not fit this model ("
            + "; ".join(f"{k}: {', '.join(v[:5])}" for k, v in shown.items() if v)
            + ")",
        )
    with torch.no_grad():
        for name, parameter in wanted.items():
            parameter.copy_(saved[name])


def _optimizer_state(optimizer, names: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors by "<parameter name>/<key>", JSON: param_groups naming their parameters, per-parameter steps).
    Keyed by name rather than position, so a checkpoint that does not fit is refused instead of misapplied."""
    order = [names[p] for group in optimizer.param_groups for p in group["params"]]
    state_dict = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict] = {}
    for index, values in state_dict["state"].items():
        name = order[index]
        for key, value in values.items():
            if key == "step" or not torch.is_tensor(value):  # the step count: a 0-d tensor in torch's optimizers
                scalars.setdefault(name, {})[key] = (
                    {"value": value.item(), "dtype": str(value.dtype).removeprefix("torch.")}
                    if torch.is_tensor(value)
                    else {"value": value}
                )
            else:
                tensors[f"{name}/{key}"] = value
    groups = [
        {**{k: v for k, v in group.items() if k != "params"}, "params": [order[i] for i in group["params"]]}
        for group in state_dict["param_groups"]
    ]
    return tensors, {"param_groups": groups, "scalars": scalars}


def _load_optimizer(optimizer, names: dict, tensors: dict[str, torch.Tensor], saved: dict) -> None:
    order = [names[p] for group in optimizer.param_groups for p in group["params"]]
    current = [[names[p] for p in group["params"]] for group in optimizer.param_groups]
    if [group["params"] for group in saved["param_groups"]] != current:
        raise TrainingError(
            BAD_PARAMS, "cannot resume: the checkpoint's optimizer state does not fit this model's trainable weights"
        )
    index = {name: i for i, name in enumerate(order)}
    state: dict[int, dict] = {}
    for key, tensor in tensors.items():
        name, _, field = key.rpartition("/")
        state.setdefault(index[name], {})[field] = tensor
    for name, values in saved["scalars"].items():
        for field, value in values.items():
            state.setdefault(index[name], {})[field] = (
                torch.tensor(value["value"], dtype=getattr(torch, value["dtype"]))
                if "dtype" in value
                else value["value"]
            )
    groups = [
        {
            **{k: tuple(v) if isinstance(v, list) else v for k, v in group.items() if k != "params"},
            "params": [index[name] for name in group["params"]],
        }
        for group in saved["param_groups"]
    ]
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def _rng_tensors(generator: torch.Generator) -> dict[str, torch.Tensor]:
    tensors = {"torch": torch.get_rng_state(), "data_order": generator.get_state()}
    if torch.cuda.is_available():
        tensors.update({f"cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    return tensors


def _rank_allocator(model):
    """peft's AdaLoRA RankAllocator, or None for every other method."""
    return getattr(getattr(model, "base_model", None), "rankallocator", None)


def _adalora_state(model) -> tuple[dict[str, torch.Tensor], dict | None]:
    """AdaLoRA scores each rank from smoothed gradient statistics it keeps outside the parameters, and records
    the ranks it kept in its config's rank_pattern (which masks every later step and shapes the saved adapter)."""
    allocator = _rank_allocator(model)
    if allocator is None:
        return {}, None
    tensors = {
        f"adalora/{score}/{name}": value.detach()
        for score in ADALORA_SCORES
        for name, value in getattr(allocator, score).items()
    }
    config = model.base_model.peft_config[model.base_model.trainable_adapter_name]
    return tensors, {"rank_pattern": config.rank_pattern}


def _load_adalora(model, tensors: dict[str, torch.Tensor], saved: dict | None) -> None:
    allocator = _rank_allocator(model)
    if allocator is None or saved is None:
        return
    device = next(p.device for p in model.parameters())
    for score in ADALORA_SCORES:
        prefix = f"adalora/{score}/"
        setattr(allocator, score, {k[len(prefix) :]: v.to(device) for k, v in tensors.items() if k.startswith(prefix)})
    model.base_model.peft_config[model.base_model.trainable_adapter_name].rank_pattern = saved["rank_pattern"]
