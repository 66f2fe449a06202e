"""Saving and loading adapters of every kind: peft folders, peftcore's own methods (only the trained tensors as
safetensors + a small JSON config) and full fine-tuning (a whole transformers model folder)."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

from . import base_pruning
from .methods import get_method

NATIVE_CONFIG = "peftcore_adapter.json"
NATIVE_WEIGHTS = "peftcore_adapter.safetensors"
PEFT_CONFIG = "adapter_config.json"
# What the job that wrote a folder used (any kind of adapter); start_from checks it.
METHOD_FILE = "peftcore_method.json"
# A stacked adapter carries the adapter it was trained on top of in this sub-folder.
BASE_ADAPTER = "base_adapter"
# peft tuners that take a task id with every forward, by saved peft_type: the module whose single_task(model)
# makes a reloaded model take task 0 when none is given.
ONE_TASK = {"MULTITASK_PROMPT_TUNING": "multitask_prompt_tuning", "POLY": "poly"}


class AdapterLoadError(ValueError):
    pass


def save_native(model, folder: Path, *, method: str, params: dict, task: str, base_model: str) -> None:
    """Write what a peftcore method trained. Full fine-tuning writes the whole model instead."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if get_method(method).saved_as == "full":
        model.save_pretrained(str(folder), safe_serialization=True)
    else:
        from safetensors.torch import save_file

        trained = {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad}
        # Buffers a method marks with a "peftcore_" name travel with it (S2FT's indices of the trained columns).
        trained.update(
            {
                n: b.detach().cpu().contiguous()
                for n, b in model.named_buffers()
                if n.rsplit(".", 1)[-1].startswith("peftcore_")
            }
        )
        save_file(trained, str(folder / NATIVE_WEIGHTS), metadata={"format": "pt"})
    config = {"peftcore_method": method, "method_params": params, "task": task, "base_model": base_model}
    (folder / NATIVE_CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def write_method_file(folder: Path, *, method: str, params: dict, task: str, **options) -> None:
    """options: the task's own settings (Task.options), e.g. SFT's prompt template: the playground must prompt the
    way training did."""
    data = {"method": method, "method_params": params, "task": task}
    data.update({key: value for key, value in options.items() if value})
    (Path(folder) / METHOD_FILE).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def load_adapter(model, folder, *, trainable: bool = False, merge: bool = False, new_modules=()):
    """Apply a saved adapter to a freshly loaded base model (with the same number of labels) and return the
    adapted model, whatever method made it. A stacked adapter's base_adapter/ is applied first, frozen.

    trainable: leave the adapter's weights (and new_modules, the head) trainable, to continue training it;
    merge: fold a peft adapter into the base weights and return the plain model (peftcore's own methods stay
    as modules)."""
    folder = Path(folder)
    if (folder / BASE_ADAPTER).is_dir():
        model = load_adapter(model, folder / BASE_ADAPTER, merge=True)
        for parameter in model.parameters():
            parameter.requires_grad_(False)
    if (folder / PEFT_CONFIG).is_file():
        from peft import PeftConfig, PeftModel

        # peft will not load a prompt-learning adapter trainable; load it frozen, then unfreeze the saved prompt
        # and the head. (P-tuning saves the prompt its encoder produced, so it trains on without the encoder.)
        saved = PeftConfig.from_pretrained(str(folder))
        prompt = saved.is_prompt_learning
        if saved.peft_type == "XLORA":
            if trainable or merge:  # its mix changes token by token: no one weight change to merge or train on
                raise AdapterLoadError(
                    "an X-LoRA adapter can be used as it is, not merged or trained further; to change it, start a "
                    "new learned combination"
                )
            from . import xlora

            return xlora.load(model, folder)
        plan = base_pruning.read_plan(folder)
        if plan is not None:  # Light-PEFT cut heads and channels of the base: the adapter fits the cut model
            base_pruning.apply_plan(model, plan)
        model = PeftModel.from_pretrained(model, str(folder), is_trainable=trainable and not prompt)
        if saved.peft_type in ONE_TASK:  # the studio's adapters hold one task: task 0 when none is given
            importlib.import_module(f"peftcore.methods.{ONE_TASK[saved.peft_type]}").single_task(model)
        if trainable and saved.peft_type == "CPT":
            # peft's inference mode reads the saved prompt alone; training adds the bounded change on top of it
            model.peft_config["default"].inference_mode = False
        if trainable and prompt:
            for name, parameter in model.named_parameters():
                # CPT keeps its context's embeddings fixed: only the change on top of them trains
                fixed = saved.peft_type == "CPT" and ".embedding." in name
                if ("prompt_encoder." in name and not fixed) or ".modules_to_save." in name:
                    parameter.requires_grad_(True)
        if not merge:
            return model
        try:
            merged = model.merge_and_unload()
        except (AttributeError, ValueError, TypeError) as exc:  # prompt methods have nothing to merge
            raise AdapterLoadError(f"this adapter cannot be merged into the base weights: {exc}") from exc
        if plan is not None:  # the cut rows and columns back as zeros: the base's shapes, the pruned function
            base_pruning.expand(merged, plan, plan["sizes"])
        return merged
    if not (folder / NATIVE_CONFIG).is_file():
        raise AdapterLoadError(f"{folder} holds neither {PEFT_CONFIG} nor {NATIVE_CONFIG}: not an adapter folder")
    from safetensors.torch import load_file

    config = json.loads((folder / NATIVE_CONFIG).read_text(encoding="utf-8"))
    method = get_method(config["peftcore_method"])
    if method.saved_as == "full":
        state = {}
        for path in sorted(folder.glob("*.safetensors")):
            state.update(load_file(str(path)))
    else:
        # Re-create the method's modules (e.g. RED's vectors) on the base, then put the trained values in.
        model = method.build(
            model, config["method_params"], config["task"], new_modules=tuple(new_modules) if trainable else ()
        )
        state = load_file(str(folder / NATIVE_WEIGHTS))
    result = model.load_state_dict(state, strict=False)
    if result.unexpected_keys:
        raise AdapterLoadError(
            f"the adapter does not fit this base model: unexpected tensors {', '.join(result.unexpected_keys[:5])}"
        )
    return model
