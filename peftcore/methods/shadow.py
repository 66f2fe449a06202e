"""ShadowPEFT (peft's Shadow): a small trainable "shadow" network of the base model's own architecture runs beside
the frozen decoder; at each block, a low-rank correction computed from how far the block's input strays from the
shadow state is added to it, and the shadow state follows the block's output through a gate. Decoder-only models.

peft's auxiliary loss, which trains the shadow network to also work on its own (`unload_shadow`), is off: the
studio serves the adapter with its base model, and that loss needs the labels inside the model's forward."""

from __future__ import annotations

from ..schema import Param
from . import Method, register
from ._catalogue import dropout, rank
from ._common import peft_builder

DECODERS = ("llama", "mistral", "qwen2", "gemma3_text", "gpt2")
PARAMS = (
    rank(8, help="The rank of each block's correction (its down- and up-projection)."),
    Param(
        "shadow_alpha",
        "float",
        0.1,
        min=0.0,
        max=10.0,
        label="Correction strength",
        help="How strongly each block's correction is added to its input (0.1 as in peft).",
    ),
    dropout("shadow_dropout"),
    Param(
        "shadow_num_hidden_layers",
        "int",
        1,
        min=1,
        max=64,
        label="Shadow layers",
        help="How many layers the shadow network has (it copies the base model's architecture, smaller).",
    ),
)


def _options(params: dict, model, total_steps) -> dict:
    return dict(
        r=params["r"],
        shadow_alpha=params["shadow_alpha"],
        shadow_dropout=params["shadow_dropout"],
        shadow_num_hidden_layers=params["shadow_num_hidden_layers"],
        auxiliary_loss_weight=0.0,
    )


METHOD = register(
    Method(
        name="shadow",
        label="ShadowPEFT",
        family="additive",
        description="Runs a small trainable copy of the model beside it, whose state corrects each layer's input; "
        "the model itself stays frozen. Decoder models that write (Llama, Gemma, GPT-2, ...).",
        paper="https://huggingface.co/docs/peft/package_reference/shadow",
        params=PARAMS,
        tasks=("sft", "preference"),
        recommended_learning_rate=1e-3,
        can_merge=False,
        build=peft_builder("ShadowConfig", "ShadowPEFT", _options, targets=False),
        acts_on=("representation",),
        how="adds",
        architectures=DECODERS,
    )
)
