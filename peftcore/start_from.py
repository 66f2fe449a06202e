"""Starting a job from an adapter a finished job wrote, in one of two modes:

- continue: load the adapter trainable and train it further (same method, same method parameters);
- stack: apply the adapter and keep it frozen (peft adapters are merged into the base weights, peftcore's own
  stay as frozen modules), then train a new adapter of any method on top. The new folder carries the old one
  as base_adapter/, and peftcore.load_adapter applies both.

The classifier head comes from the adapter in both modes, so the new data must use the adapter's labels.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from .adapters import BASE_ADAPTER, METHOD_FILE, NATIVE_CONFIG, PEFT_CONFIG, load_adapter
from .artifacts import LABELS_FILE, read_labels
from .errors import BAD_DATA, BAD_PARAMS, TrainingError
from .methods import Method

MODES = ("continue", "stack")


@dataclass(frozen=True)
class StartFrom:
    folder: Path
    mode: str


def parse_start_from(value) -> StartFrom | None:
    if value in (None, {}):
        return None
    if not isinstance(value, dict) or not value.get("adapter_dir"):
        raise TrainingError(BAD_PARAMS, "start_from must be an object with adapter_dir and mode")
    mode = value.get("mode") or "continue"
    if mode not in MODES:
        raise TrainingError(BAD_PARAMS, f"start_from mode must be one of {', '.join(MODES)} (got {mode!r})")
    folder = Path(value["adapter_dir"])
    if not (folder / LABELS_FILE).is_file() or not any((folder / f).is_file() for f in (PEFT_CONFIG, NATIVE_CONFIG)):
        raise TrainingError(BAD_PARAMS, f"{folder} is not an adapter folder written by the studio")
    return StartFrom(folder=folder, mode=mode)


def adapter_method(folder: Path) -> dict | None:
    """{"method", "method_params", "task"} of the job that wrote the folder (None for folders from before the
    studio recorded it)."""
    path = Path(folder) / METHOD_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def starting_labels(start: StartFrom, data_labels: list[str]) -> list[str]:
    """The adapter's labels, in its head's order; every label in the new data must be one of them."""
    labels = read_labels(start.folder)
    unknown = [label for label in data_labels if label not in labels]
    if unknown:
        raise TrainingError(
            BAD_DATA,
            f"the adapter you start from was trained for the labels {', '.join(labels)}; this data also has "
            f"{', '.join(unknown)}. Start from the base model instead, or use data with the adapter's labels",
        )
    return labels


def start_refusal(mode: str, below: str | None, method: str, below_params: dict | None = None) -> str | None:
    """Why a job with `method` cannot start in `mode` from an adapter made by the method `below` (None when
    unknown) with `below_params`, or None when it can. Pure (no torch): the web app calls it to refuse a job form
    early."""
    from .alora import activated
    from .methods import get_method

    if mode not in MODES:
        return f"the start mode must be one of {', '.join(MODES)} (got {mode!r})"
    new = get_method(method)
    if mode == "continue":
        if below is not None and below != new.name:
            return (
                f"continue training keeps the adapter's method ({below}), not {new.name}; choose 'stack' to "
                "train a different method on top of it"
            )
        if not new.can_continue:
            return f"a {new.label} adapter cannot be trained further; train a new one from the base model"
        return None
    if new.saved_as == "full":
        return (
            f"{new.label} trains every weight, so it cannot be stacked on an adapter; continue training "
            "instead, or start from the base model"
        )
    if activated(below_params or {}):
        return (
            "an aLoRA adapter cannot be merged into the base weights (it is on only from the answer on), so "
            "nothing can be stacked on it; continue training it instead"
        )
    if below is not None:
        old = get_method(below)
        if old.saved_as == "peft" and not old.can_merge:
            return f"a {old.label} adapter cannot be merged into the base weights, so nothing can be stacked on it" + (
                "; continue training it instead" if old.can_continue else ""
            )
        if old.saved_as != "peft" and old.name == new.name:
            return (
                f"{new.label} cannot be stacked on a {old.label} adapter (they would edit the same places); "
                "continue training it instead"
            )
    return None


def check_start(start: StartFrom, method: Method, method_params: dict, task: str) -> None:
    """Refuse combinations that cannot work, before anything is loaded."""
    recorded = adapter_method(start.folder)
    reason = start_refusal(
        start.mode, recorded["method"] if recorded else None, method.name, (recorded or {}).get("method_params")
    )
    if reason is None and recorded:
        if start.mode == "continue" and recorded["method_params"] != method_params:
            reason = "continue training keeps the adapter's method parameters unchanged"
        elif recorded.get("task") not in (None, task):
            reason = f"the adapter was trained for {recorded['task']}, not {task}"
    if reason:
        raise TrainingError(BAD_PARAMS, reason)


def apply_start(model, start: StartFrom, method: Method, method_params: dict, task: str, *, new_modules, total_steps):
    """The model to train: the adapter loaded trainable (continue), or applied frozen with the new method
    built on top (stack)."""
    if start.mode == "continue":
        return load_adapter(model, start.folder, trainable=True, new_modules=new_modules)
    model = load_adapter(model, start.folder, merge=True)
    for parameter in model.parameters():
        parameter.requires_grad_(False)  # the method's build unfreezes exactly its own weights and the head
    return method.build(model, method_params, task, new_modules=new_modules, total_steps=total_steps)


def carry_base(start: StartFrom | None, folder: Path) -> bool:
    """Copy into the new adapter folder what loading it needs below it; True when there is such a base."""
    if start is None:
        return False
    below = start.folder if start.mode == "stack" else start.folder / BASE_ADAPTER
    if not below.is_dir():
        return False
    shutil.copytree(below, Path(folder) / BASE_ADAPTER)
    return True
