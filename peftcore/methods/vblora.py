"""VB-LoRA: every layer's low-rank factors assembled from one shared bank of vectors (Li et al., 2024), through
peft."""

from __future__ import annotations

from ..schema import Param
from ._catalogue import rank, shared_divisor, tuner

PARAMS = (
    rank(4),
    Param(
        "num_vectors",
        "int",
        256,
        min=2,
        max=65536,
        label="Bank size",
        help="How many vectors the shared bank holds; each factor mixes the top few of them.",
    ),
    Param(
        "vector_length",
        "int",
        None,
        min=1,
        max=4096,
        optional=True,
        label="Vector length",
        help="The length of each bank vector; must divide every adapted layer's sizes. Leave empty for the largest "
        "length up to 256 that does.",
    ),
    Param("topk", "int", 2, min=1, max=16, label="Top k", help="How many bank vectors each piece mixes."),
)


def _options(params: dict, model, total_steps) -> dict:
    length = params["vector_length"] or shared_divisor(model, params, 256, "VB-LoRA")
    return dict(r=params["r"], num_vectors=params["num_vectors"], vector_length=length, topk=params["topk"])


METHOD = tuner(
    "vblora",
    "VB-LoRA",
    "VBLoRAConfig",
    description="All layers draw their LoRA factors from one shared vector bank: tiny adapters, LoRA-like quality.",
    paper="https://arxiv.org/abs/2405.15179",
    params=PARAMS,
    options=_options,
    learning_rate=3e-3,
)
