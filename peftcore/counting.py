"""Trainable-parameter counts without weights: the model is built on the meta device from its config alone,
the method is applied to it, and the parameters are counted. Nothing is allocated or read but the config and
the checkpoint's tensor names (safetensors headers)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from .methods import get_method
from .methods._common import MethodBuildError
from .schema import format_errors, validate_params

_HEAD_NAMES = ("classifier", "score")  # the task heads transformers adds for sequence classification


def _checkpoint_keys(folder: Path) -> set[str] | None:
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        return None
    keys: set[str] = set()
    for path in files:  # a safetensors file starts with an 8-byte length and a JSON header naming its tensors
        with path.open("rb") as fh:
            size = int.from_bytes(fh.read(8), "little")
            keys.update(k for k in json.loads(fh.read(size)) if k != "__metadata__")
    return keys


def _new_modules(model, keys: set[str] | None) -> list[str]:
    """The modules the checkpoint has no weights for (they start random and must train): as load_model finds."""
    if keys is None:
        return [name for name in _HEAD_NAMES if hasattr(model, name)]
    prefix = f"{model.base_model_prefix}."
    missing = set()
    for name, _ in model.named_parameters():
        stripped = name[len(prefix) :] if name.startswith(prefix) else name
        if not {name, stripped, prefix + name} & keys:
            missing.add(name.rsplit(".", 1)[0])
    return sorted(missing)


def count_on_meta(
    config,
    method_name: str,
    params: Mapping | None,
    task: str,
    *,
    checkpoint_keys: set[str] | None = None,
    causal_lm: bool = False,
) -> dict:
    import torch
    import transformers

    from .tasks import TASKS, get_task

    method = get_method(method_name)
    clean, errors = validate_params(method.params, params)
    if errors:
        raise MethodBuildError(f"{method.label} parameters: {format_errors(errors)}")
    reason = method.supports(getattr(config, "model_type", ""), task)
    if reason:
        raise MethodBuildError(reason)
    # PiSSA, OLoRA and MiCA decompose real weights: counted as the default start, which trains as many, except
    # that MiCA keeps its up-projections (lora_B) frozen
    frozen = (".ranknum.", ".lora_B.") if clean.get("init") == "mica" else (".ranknum.",)
    if "init" in clean:
        clean["init"] = "default"
    # causal_lm: a causal LM without a checkpoint to compare with (nothing of it is new).
    if causal_lm:
        auto = transformers.AutoModelForCausalLM
    else:  # an unknown task is counted as the default (first) one, as it always was
        auto = getattr(transformers, get_task(task if task in TASKS else next(iter(TASKS))).auto_class)
    with torch.device("cpu" if method.needs_weight_values else "meta"):
        model = auto.from_config(config)
        new_modules = [] if causal_lm else _new_modules(model, checkpoint_keys)
        head = sum(p.numel() for n, p in model.named_parameters() if n.startswith(tuple(f"{m}." for m in new_modules)))
    # Built outside the meta context: peft creates adapter weights on the CPU and moves them to the base layer's
    # device (meta), and some tuners (BOFT) need real values while building.
    model = method.build(model, clean, task, new_modules=new_modules, total_steps=None)
    # AdaLoRA's rank counter is a frozen Parameter that peft's move to the meta device makes trainable again.
    trainable = sum(
        p.numel() for n, p in model.named_parameters() if p.requires_grad and not any(f in n for f in frozen)
    )
    total = sum(p.numel() for p in model.parameters())
    return {"trainable": trainable, "total": total, "share": trainable / total if total else 0.0, "head": head}


def count_trainable(model_path, method_name: str, params: Mapping | None, task: str, *, num_labels: int = 2) -> dict:
    from transformers import AutoConfig

    folder = Path(model_path)
    config = AutoConfig.from_pretrained(str(folder), local_files_only=True, num_labels=num_labels)
    return count_on_meta(config, method_name, params, task, checkpoint_keys=_checkpoint_keys(folder))
