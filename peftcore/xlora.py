"""X-LoRA (Buehler & Buehler, 2024), through peft's XLoraModel: several LoRA "experts" and a small router that
reads the model's last hidden states and weighs the experts per token. Two ways in:
- learned combination (issue 22, the combine page's "learned" mode): the experts are finished LoRA adapters,
  frozen; only the router trains, on the job's rows;
- a new X-LoRA (the job form): `n_experts` new LoRA experts, trained together with their router.

peft 0.21 builds and runs X-LoRA but does not save it usably (its save_pretrained writes the router into each
expert's folder beside the whole base model, and its top-level weights file empty), so the folder is written here
in the layout peft's loader reads: adapter_config.json (XLoraConfig) and adapter_model.safetensors (the router),
and one plain LoRA folder per expert, named 0, 1, ... . Plain peft loads it with the experts' paths filled in:

    config = PeftConfig.from_pretrained(folder)
    config.adapters = {name: f"{folder}/{name}" for name in config.adapters}
    model.config.use_cache = False
    model = PeftModel.from_pretrained(model, folder, config=config)
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

ROUTER_KEY = "internal_xlora_classifier"
PEFT_CONFIG = "adapter_config.json"
PEFT_WEIGHTS = "adapter_model.safetensors"


class XLoraError(ValueError):
    """The experts or settings do not fit; the message says what to change."""


def _no_cache(model) -> None:
    # X-LoRA runs the model twice per forward (a scaling pass, then the real one): a key/value cache would mix them
    model.config.use_cache = False
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.use_cache = False


def _config(model, task_type, experts: dict[str, str], params: dict, trainable_experts: bool):
    from peft import XLoraConfig

    depth = params.get("depth", 1)
    return XLoraConfig(
        task_type=task_type,
        hidden_size=model.config.hidden_size,
        adapters=experts,
        xlora_depth=depth,
        xlora_size=params.get("router_size", 256),
        layerwise_scalings=bool(params.get("layerwise")),
        top_k_lora=params.get("top_k"),
        softmax_temperature=params.get("temperature", 1.0),
        use_trainable_adapters=trainable_experts,
    )


def new_experts(model, folder: Path, *, count: int, lora_options: dict, task_type) -> dict[str, str]:
    """Write `count` new LoRA experts for this model (LoRA's start: random A, zero B, each drawn on its own) as
    folders 0, 1, ... under `folder`, leaving the model as it was."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(task_type=task_type, **lora_options)
    wrapped = get_peft_model(model, config, adapter_name="0")
    for i in range(1, count):
        wrapped.add_adapter(str(i), LoraConfig(task_type=task_type, **lora_options))
    wrapped.save_pretrained(str(folder), save_embedding_layers=False)  # an adapter not named default: folder/<name>
    wrapped.unload()
    return {str(i): str(folder / str(i)) for i in range(count)}


def build(model, params: dict, task_type, *, experts: Sequence[str] = (), lora_options: dict | None = None):
    """The X-LoRA model: over the given expert folders (frozen), or over `params["n_experts"]` new ones that train
    with the router (lora_options: their LoRA settings)."""
    if experts and len(experts) < 2:
        raise XLoraError("X-LoRA mixes at least two LoRA adapters")
    _no_cache(model)
    if experts:
        for folder in experts:
            if json.loads((Path(folder) / PEFT_CONFIG).read_text(encoding="utf-8")).get("peft_type") != "LORA":
                raise XLoraError(f"{Path(folder).name} is not a LoRA adapter; X-LoRA mixes LoRA adapters only")
        # peft names the loaded experts 0, 1, ... and activates them by these keys: any other key breaks its forward
        return _wrap(model, task_type, {str(i): str(folder) for i, folder in enumerate(experts)}, params, False)
    # new experts: their folders are read only while building (the saved adapter holds their trained weights)
    with tempfile.TemporaryDirectory(prefix="xlora-experts-") as scratch:
        named = new_experts(
            model, Path(scratch), count=params["n_experts"], lora_options=lora_options or {}, task_type=task_type
        )
        return _wrap(model, task_type, named, params, True)


def _wrap(model, task_type, named: dict[str, str], params: dict, trainable_experts: bool):
    from peft import get_peft_model

    try:
        return get_peft_model(model, _config(model, task_type, named, params, trainable_experts))
    except (ValueError, TypeError, KeyError, RuntimeError) as exc:
        raise XLoraError(f"X-LoRA cannot be built over these adapters: {exc}") from exc


def _xlora(model):
    return model.base_model  # PeftModel -> XLoraModel


def expert_state(model, name: str) -> dict:
    """One expert's weights (every lora_* tensor: linear and embedding factors alike), keyed as a plain LoRA
    adapter saves them: the expert's name taken out of each parameter's path."""
    inner = _xlora(model).lora_model.model
    named = re.compile(rf"\.(lora_[A-Za-z_]+)\.{re.escape(name)}(?=\.|$)")
    return {
        "base_model.model." + named.sub(r".\1", path): parameter.detach().cpu().contiguous()
        for path, parameter in inner.named_parameters()
        if named.search(path)
    }


def router_shares(model, evaluate) -> list[float]:
    """The router's mean weight on each expert, over the real tokens (attention mask) and the layers, of what
    `evaluate()` runs through the model; empty when the router never ran."""
    import torch

    classifier = _xlora(model).internal_xlora_classifier
    total, tokens = None, 0.0

    def seen(_module, args, kwargs, scalings):  # scalings: (batch, positions, layers, experts)
        nonlocal total, tokens
        weights = scalings.detach().float().mean(dim=2)
        mask = kwargs.get("attention_mask")
        mask = torch.ones(weights.shape[:2], device=weights.device) if mask is None else mask.to(weights.dtype)
        summed = (weights * mask.unsqueeze(-1)).sum(dim=(0, 1))
        total = summed if total is None else total + summed
        tokens += float(mask.sum())

    handle = classifier.register_forward_hook(seen, with_kwargs=True)
    try:
        evaluate()
    finally:
        handle.remove()
    return [] if total is None or not tokens else [float(v) for v in total / tokens]


def save(model, folder: Path) -> None:
    """Write the X-LoRA folder (see the module's docstring): router, config, and each expert as a LoRA folder."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    xlora = _xlora(model)
    config = model.peft_config["default"]
    names = list(config.adapters)
    for name in names:
        expert = xlora.lora_model.peft_config[name]
        expert.base_model_name_or_path = config.base_model_name_or_path
        expert.save_pretrained(str(folder / name))
        save_file(expert_state(model, name), str(folder / name / PEFT_WEIGHTS), metadata={"format": "pt"})
    router = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if ROUTER_KEY in k}
    save_file(router, str(folder / PEFT_WEIGHTS), metadata={"format": "pt"})
    data = config.to_dict()
    data["adapters"] = {name: name for name in names}  # sub-folders of this folder; loaders fill in the path
    (folder / PEFT_CONFIG).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def load(model, folder: Path):
    """A saved X-LoRA folder on a freshly loaded base model, as plain peft loads it (frozen)."""
    from peft import PeftConfig, PeftModel

    folder = Path(folder)
    config = PeftConfig.from_pretrained(str(folder))
    config.adapters = {name: str(folder / name) for name in config.adapters}
    _no_cache(model)
    return PeftModel.from_pretrained(model, str(folder), config=config)


def expert_names(model) -> list[str]:
    return list(model.peft_config["default"].adapters)


class OneExpert:
    """Within it, the model runs expert `name` alone, exactly as that LoRA adapter does on its own: the router's
    output is replaced by all weight on that expert (peft's disabled state would switch every expert off)."""

    def __init__(self, model, name: str):
        self.classifier = _xlora(model).internal_xlora_classifier
        self.index = list(model.peft_config["default"].adapters).index(name)

    def _one_hot(self, result, input_ids=None, inputs_embeds=None, *args, **kwargs):
        import torch

        ref = input_ids if input_ids is not None else inputs_embeds
        c = self.classifier
        scalings = torch.zeros(ref.shape[0], ref.shape[1], c.n_layers, c.n_classes, dtype=c.dtype, device=ref.device)
        scalings[..., self.index] = 1.0
        return scalings

    def __enter__(self):
        self.classifier.forward = self._one_hot
        return self

    def __exit__(self, *exc):
        del self.classifier.forward  # back to the class's forward
        return False
