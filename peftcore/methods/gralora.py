"""GraLoRA: LoRA split into a grid of k x k smaller blocks, each with its own factors (Jung et al., 2025), through
peft."""

from __future__ import annotations

from ..schema import Param
from ._catalogue import dropout, rank, tuner

PARAMS = (
    rank(
        8,
        "The update's total rank, as in LoRA (the same trained weights); must be divisible by the grid size.",
    ),
    Param(
        "gralora_k",
        "int",
        2,
        min=1,
        max=8,
        label="Grid size",
        help="Splits each weight into k x k blocks with their own low-rank update: k times the expressive rank at "
        "the same cost. Must divide the rank and the layers' sizes.",
    ),
    dropout("gralora_dropout"),
)


def _options(params: dict, model, total_steps) -> dict:
    from ._common import MethodBuildError

    if params["r"] % params["gralora_k"]:
        raise MethodBuildError("GraLoRA: the rank must be divisible by the grid size")
    return dict(
        r=params["r"],
        alpha=2 * params["r"],  # twice the rank, as the studio's LoRA: the update's scale stays the same at any rank
        gralora_k=params["gralora_k"],
        gralora_dropout=params["gralora_dropout"],
    )


METHOD = tuner(
    "gralora",
    "GraLoRA",
    "GraloraConfig",
    description="LoRA cut into a grid of small blocks: the same weights, a higher-rank update.",
    paper="https://arxiv.org/abs/2505.20355",
    params=PARAMS,
    options=_options,
    learning_rate=1e-3,
)
