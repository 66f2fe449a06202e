"""LLaMA-Adapter's adaption prompts (Zhang et al., 2023, arxiv.org/abs/2303.16199; peft's AdaptionPrompt): learned
prompt tokens that the top layers' attention reads through a gate that starts at zero, so training starts from the
untouched model. peft implements it for Llama, Mistral and GPT-2 attention only."""

from __future__ import annotations

from ..schema import Param
from . import Method, register
from ._common import peft_builder

PARAMS = (
    Param(
        "adapter_len",
        "int",
        10,
        min=1,
        max=256,
        label="Prompt length",
        help="How many learned prompt tokens each adapted layer reads (10 as in the paper).",
    ),
    Param(
        "adapter_layers",
        "int",
        8,
        min=1,
        max=256,
        label="Layers",
        help="How many of the top layers get a prompt (all of them when the model has fewer).",
    ),
)
SUPPORTED = ("llama", "mistral", "gpt2")


def _options(params: dict, model, total_steps) -> dict:
    layers = getattr(model.config, "num_hidden_layers", None) or model.config.n_layer
    return dict(adapter_len=params["adapter_len"], adapter_layers=min(params["adapter_layers"], layers))


METHOD = register(
    Method(
        name="adaption_prompt",
        label="Adaption prompt (LLaMA-Adapter)",
        family="prompt",
        description="Learns a few prompt tokens that the top layers read through a gate starting at zero, so the "
        "model starts as it was. Llama, Mistral and GPT-2 models that write.",
        paper="https://arxiv.org/abs/2303.16199",
        params=PARAMS,
        tasks=("sft", "preference"),
        recommended_learning_rate=1e-2,
        can_merge=False,
        build=peft_builder("AdaptionPromptConfig", "Adaption prompt", _options, targets=False, heads=False),
        acts_on=("attention",),
        how="prompts",
        architectures=SUPPORTED,
    )
)
