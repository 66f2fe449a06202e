"""Adapter arithmetic (issue 21; "Composing parameter-efficient modules with arithmetic operations"): two or more
finished LoRA adapters of one base model, task and label set, combined with weights into one new adapter folder
that loads like any other. A negative weight subtracts an adapter (the paper's "forgetting").

The combinations are peft's `add_weighted_adapter`, named for what they do:
- `sum`: the exact weighted sum of the adapters' weight changes (peft's `cat`: the ranks add up);
- `svd`: the same sum compressed back to a rank by SVD (`svd_rank`, default the largest parent's);
- `linear`, `ties`, `dare_linear`, `dare_ties`, `magnitude_prune`: peft's merging rules (same rank only; ties,
  dare and magnitude_prune keep a `density` of each change).

A classifier head (peft's modules_to_save) is not a weight change: the combined head is the average of the heads
of the adapters with a positive weight, weighted by those weights (a subtracted adapter takes nothing of its head).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from .base_pruning import PLAN_FILE

COMBINATIONS = {
    "sum": "cat",
    "svd": "svd",
    "linear": "linear",
    "ties": "ties",
    "dare_linear": "dare_linear",
    "dare_ties": "dare_ties",
    "magnitude_prune": "magnitude_prune",
}
# Not a weight sum: X-LoRA's router, trained on the job's rows, mixes the adapters token by token
# (peftcore/xlora.py; the job's method is then xlora).
LEARNED = "learned"
MODES = (*COMBINATIONS, LEARNED)
# peft can combine these (LoRA's add_weighted_adapter has every rule; IA3's sums its scaling vectors).
COMBINABLE = ("LORA", "IA3")
SAME_RANK = {"linear", "ties", "dare_linear", "dare_ties", "magnitude_prune"}
WITH_DENSITY = {"ties", "dare_linear", "dare_ties", "magnitude_prune"}
RECIPE_FILE = "combined_from.json"
COMBINED = "combined"


class CombineError(ValueError):
    """The adapters cannot be combined this way; the message says why and what to change."""


@dataclass
class Parent:
    folder: Path
    config: dict  # adapter_config.json
    method: dict  # peftcore's record of the job that wrote it (start_from.adapter_method)
    labels: list[str]


def read_parent(folder: Path) -> Parent:
    from .artifacts import LABELS_FILE, read_labels
    from .start_from import adapter_method

    folder = Path(folder)
    config_path = folder / "adapter_config.json"
    if not config_path.is_file():
        raise CombineError(f"{folder.name}: not a peft adapter (no adapter_config.json); only LoRA adapters combine")
    labels = read_labels(folder) if (folder / LABELS_FILE).is_file() else []
    return Parent(folder, json.loads(config_path.read_text(encoding="utf-8")), adapter_method(folder) or {}, labels)


def combine_refusal(parents: list[Parent], weights: list[float], combination: str, density: float | None) -> str | None:
    """Why these adapters cannot be combined so (None: they can)."""
    if len(parents) < 2:
        return "pick at least two adapters to combine"
    if len(weights) != len(parents):
        return f"give one weight per adapter: {len(parents)} adapters, {len(weights)} weights"
    if combination not in COMBINATIONS:
        return f"unknown combination '{combination}'; choose one of: {', '.join(COMBINATIONS)}"
    if not any(w > 0 for w in weights):
        return "at least one weight must be positive (a negative weight subtracts an adapter from the others)"
    for parent in parents:
        config = parent.config
        if config.get("peft_type") not in COMBINABLE:
            kind = config.get("peft_type") or "this kind"
            return f"{parent.folder.name} is a {kind} adapter; only LoRA and IA3 adapters can be combined"
        if config.get("use_dora"):
            return f"{parent.folder.name} uses DoRA, whose magnitudes do not add up; combine plain LoRA adapters"
        if config.get("use_bdlora"):
            return f"{parent.folder.name} is a BD-LoRA adapter (block-diagonal factors); combine plain LoRA adapters"
        if config.get("alora_invocation_tokens"):
            return f"{parent.folder.name} is an aLoRA adapter (on only from the answer on); combine plain LoRA adapters"
        if (parent.folder / PLAN_FILE).is_file():
            return (
                f"{parent.folder.name} fits a base model whose heads and channels Light-PEFT cut; combine adapters "
                "trained on the whole base model"
            )
    if len({p.config.get("peft_type") for p in parents}) > 1:
        return "the adapters are of different kinds (LoRA and IA3); combine adapters of one kind"
    if parents[0].config.get("peft_type") == "IA3" and combination != "linear":
        return "IA3 adapters combine by 'linear' only: the weighted sum of their scaling vectors"
    first = parents[0]
    for parent in parents[1:]:
        if parent.method.get("task", "") != first.method.get("task", ""):
            return "the adapters were trained for different tasks"
        if parent.labels != first.labels:
            return f"the adapters know different labels ({', '.join(first.labels)} / {', '.join(parent.labels)})"
        if set(_targets(parent.config)) != set(_targets(first.config)):
            return "the adapters adapt different layers; combine adapters trained with the same placement"
    if (
        first.config.get("peft_type") == "LORA"
        and combination in SAME_RANK
        # a Light-PEFT-pruned adapter keeps each layer's own rank in rank_pattern: not one rank
        and (len({p.config.get("r") for p in parents}) > 1 or any(p.config.get("rank_pattern") for p in parents))
    ):
        return f"'{combination}' needs adapters of the same rank; use 'sum' or 'svd' for different ranks"
    if combination in WITH_DENSITY and not (density is not None and 0 < density <= 1):
        return f"'{combination}' keeps a share of each change: give a density between 0 and 1, e.g. 0.5"
    return None


def _targets(config: dict) -> list[str]:
    targets = config.get("target_modules") or []
    return [targets] if isinstance(targets, str) else list(targets)


def combine(
    model_path: Path,
    folders: list[Path],
    weights: list[float],
    out_dir: Path,
    *,
    combination: str = "sum",
    density: float | None = None,
    svd_rank: int | None = None,
) -> Path:
    """Write the combined adapter to out_dir (a folder like any adapter the studio writes) and return it."""
    import torch

    from .tasks import get_task

    parents = [read_parent(Path(folder)) for folder in folders]
    if refusal := combine_refusal(parents, weights, combination, density):
        raise CombineError(refusal)
    first = parents[0]
    task = get_task(first.method.get("task") or "text-classification")
    tokenizer = task.load_tokenizer(first.folder)
    options = {"pooling": first.method["pooling"]} if first.method.get("pooling") else None
    model, _ = task.load_model(Path(model_path), first.labels, tokenizer, options)
    from peft import PeftModel

    model = PeftModel.from_pretrained(model, str(first.folder), adapter_name="p0")
    names = ["p0"]
    for i, parent in enumerate(parents[1:], 1):
        model.load_adapter(str(parent.folder), adapter_name=f"p{i}")
        names.append(f"p{i}")
    extra = {"density": density} if combination in WITH_DENSITY else {}
    if combination == "svd" and svd_rank:
        extra["svd_rank"] = svd_rank
    # peft refuses to combine adapters that each carry a head (modules_to_save): all heads but the first are set
    # aside while it combines the weight changes; the heads are averaged below.
    held = _set_heads_aside(model, names)
    if first.config.get("peft_type") == "IA3":
        model.add_weighted_adapter(names, list(weights), COMBINED)
    else:
        model.add_weighted_adapter(names, list(weights), COMBINED, combination_type=COMBINATIONS[combination], **extra)
    for wrapper, copies in held:
        for name, module in copies.items():
            wrapper.modules_to_save[name] = module
    with torch.no_grad():
        _combine_heads(model, names, weights)
    model.set_adapter(COMBINED)
    out_dir = Path(out_dir)
    saved = out_dir.parent / f".{out_dir.name}-peft"
    model.save_pretrained(str(saved), selected_adapters=[COMBINED])
    out_dir.mkdir(parents=True, exist_ok=True)
    for item in (saved / COMBINED).iterdir():
        shutil.move(str(item), out_dir / item.name)
    shutil.rmtree(saved, ignore_errors=True)
    _copy_studio_files(first.folder, out_dir)
    recipe = {
        "combination": combination,
        "weights": list(weights),
        "density": density,
        "parents": [str(p.folder.name) for p in parents],
        "parent_methods": [p.method for p in parents],
    }
    (out_dir / RECIPE_FILE).write_text(json.dumps(recipe, indent=1), encoding="utf-8")
    return out_dir


def _set_heads_aside(model, names: list[str]) -> list:
    from peft.utils import ModulesToSaveWrapper

    held = []
    for module in model.modules():
        if isinstance(module, ModulesToSaveWrapper):
            # the first parent's stays: it is the wrapper's active copy, which peft looks up meanwhile
            held.append((module, {n: module.modules_to_save.pop(n) for n in names[1:] if n in module.modules_to_save}))
    return held


def _combine_heads(model, names: list[str], weights: list[float]) -> None:
    """Each modules_to_save copy (a classifier head) of the combined adapter: the positive-weighted average of
    the parents' copies."""
    from peft.utils import ModulesToSaveWrapper

    positive = [(name, w) for name, w in zip(names, weights) if w > 0]
    total = sum(w for _, w in positive)
    for module in model.modules():
        if not isinstance(module, ModulesToSaveWrapper):
            continue
        copies = module.modules_to_save
        if names[0] not in copies:
            continue
        if COMBINED not in copies:
            module.update(COMBINED)
        target = copies[COMBINED]
        for key, value in target.state_dict().items():
            value.copy_(sum(copies[name].state_dict()[key] * (w / total) for name, w in positive))


def _copy_studio_files(source: Path, out_dir: Path) -> None:
    """The tokenizer, labels and the studio's record of the method and task, as the first parent had them."""
    for item in source.iterdir():
        if item.name.startswith("adapter_") or item.name in ("README.md", RECIPE_FILE) or item.is_dir():
            continue
        if not (out_dir / item.name).exists():
            shutil.copy2(item, out_dir / item.name)


def add_command(commands) -> None:
    """`python -m peftcore combine`: the subcommand's arguments (peftcore/cli.py registers it)."""
    command = commands.add_parser("combine", help="combine finished LoRA adapters with weights into a new adapter")
    command.add_argument("--model", type=Path, required=True, help="the base model folder")
    command.add_argument("--adapter", type=Path, action="append", required=True, help="an adapter folder (2 or more)")
    command.add_argument("--weights", required=True, help="one per adapter, comma separated; negative subtracts")
    command.add_argument("--combination", default="sum", choices=sorted(COMBINATIONS))
    command.add_argument("--density", type=float, help="for ties, dare_* and magnitude_prune: the share kept")
    command.add_argument("--svd-rank", type=int, help="for svd: the combined adapter's rank")
    command.add_argument("--out", type=Path, required=True, help="the folder to write")


def run_command(args) -> int:
    import sys

    from .errors import EXIT_FAILED, EXIT_OK

    try:
        weights = [float(w) for w in args.weights.split(",")]
        out = combine(
            args.model,
            args.adapter,
            weights,
            args.out,
            combination=args.combination,
            density=args.density,
            svd_rank=args.svd_rank,
        )
    except (CombineError, ValueError) as exc:
        print(f"cannot combine: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps({"combined": str(out)}))
    return EXIT_OK
