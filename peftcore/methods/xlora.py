"""X-LoRA: a mixture of LoRA experts with a learned router (peftcore/xlora.py). On the job form it trains new
experts and their router together; from the combine page ("learned") it trains only a router over finished LoRA
adapters, which the worker hands to build_over()."""

from __future__ import annotations

import functools
from collections.abc import Sequence

from ..schema import Param
from . import Method, register
from ._catalogue import rank
from ._common import MethodBuildError, resolve_targets, targeting_params

PARAMS = (
    Param(
        "n_experts",
        "int",
        2,
        min=2,
        max=8,
        label="Experts",
        help="How many new LoRA experts the router mixes (a learned combination uses the picked adapters instead).",
    ),
    rank(8, help="The rank of each new expert, as in LoRA."),
    Param(
        "depth",
        "int",
        1,
        min=1,
        max=4,
        label="Router depth",
        help="Layers in the router that weighs the experts: 1 is one linear layer on the last hidden states.",
    ),
    Param(
        "router_size",
        "int",
        256,
        min=8,
        max=4096,
        label="Router width",
        help="Width of the router's hidden layers (only with a depth above 1).",
    ),
    Param(
        "layerwise",
        "bool",
        False,
        label="Per-layer weights",
        help="Weigh the experts separately in every adapted layer instead of once for the whole model.",
    ),
    Param(
        "top_k",
        "int",
        None,
        min=1,
        max=8,
        optional=True,
        label="Top k",
        help="Use only the k highest-weighted experts for each token; empty uses them all.",
    ),
    Param(
        "temperature",
        "float",
        1.0,
        min=0.05,
        max=10.0,
        label="Softmax temperature",
        help="Below 1 the router picks more sharply between experts; above 1 it mixes them more evenly.",
    ),
    # the new experts sit where LoRA's do by default: every linear layer of each block
    *targeting_params("peft's usual LoRA layers for this model (new experts only)", "both", offer_usual=True),
)
LORA_TARGETS = "TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING"


def _task_type(task: str):
    from ..tasks import peft_task_type

    return peft_task_type(task)


def build(model, params: dict, task: str, *, new_modules: Sequence[str] = (), total_steps=None, experts=()):
    from ..xlora import XLoraError
    from ..xlora import build as build_xlora

    if new_modules:
        raise MethodBuildError(f"X-LoRA cannot train the new layers {', '.join(new_modules)} this task adds")
    if params.get("top_k") is not None and params["top_k"] > (len(experts) or params["n_experts"]):
        raise MethodBuildError(f"top_k ({params['top_k']}) is more than the experts there are to pick from")
    lora_options = {
        "r": params["r"],
        "lora_alpha": 2 * params["r"],  # LoRA's own default ratio here (peftcore/methods/lora.py: alpha follows r)
        "target_modules": resolve_targets(model, params, LORA_TARGETS),
    }
    try:
        return build_xlora(model, params, _task_type(task), experts=experts, lora_options=lora_options)
    except XLoraError as exc:
        raise MethodBuildError(str(exc)) from exc


def _save(model, folder) -> None:
    from ..xlora import save

    save(model, folder)


def build_over(experts: Sequence[str]):
    """build() over finished LoRA adapters (frozen): what a learned combination trains."""
    return functools.partial(build, experts=tuple(str(e) for e in experts))


METHOD = register(
    Method(
        name="xlora",
        label="X-LoRA",
        family="additive",
        description="A mixture of LoRA experts: a small router weighs them token by token. From the combine page it "
        "learns to mix finished LoRA adapters.",
        paper="https://arxiv.org/abs/2402.07148",
        params=PARAMS,
        tasks=("sft", "preference"),
        recommended_learning_rate=1e-3,  # LoRA's (the new experts are LoRA); the router is one linear layer
        can_merge=False,  # the mix changes token by token: there is no single weight change to merge
        build=build,
        acts_on=("attention", "ffn"),
        how="adds",
        # peft's expert loader finds the layers under "model." only (Llama-style causal LMs)
        architectures=("llama", "mistral", "qwen2", "gemma3_text"),
        refusals={
            "gpt2": "X-LoRA cannot load its experts into GPT-2 models (peft 0.21 looks for the layers under "
            "'model.', where GPT-2 keeps them under 'transformer.'); choose a Llama-, Mistral-, Qwen2- or "
            "Gemma-style model"
        },
        needs_weight_values=True,  # building writes the new experts to disk, which the meta device cannot
        save=_save,
        load_lines=(
            "model.config.use_cache = False  # X-LoRA runs the model twice per step: a scaling pass, then its own",
            "from peft import PeftConfig",
            "config = PeftConfig.from_pretrained(folder)",
            'config.adapters = {name: f"{folder}/{name}" for name in config.adapters}  # the experts, in sub-folders',
            "model = PeftModel.from_pretrained(model, folder, config=config)",
        ),
        can_continue=False,
        allows_checkpointing=False,
    )
)
