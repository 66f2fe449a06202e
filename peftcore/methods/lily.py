"""Lily: low-rank adapters whose projectors are shared across layers and mixed per layer (Zhong et al., 2024),
through peft."""

from __future__ import annotations

from ..schema import Param
from ._catalogue import rank, tuner

PARAMS = (
    rank(),
    Param(
        "num_B",
        "int",
        2,
        min=1,
        max=64,
        label="Shared experts",
        help="How many up-projections all layers share (each layer mixes them with its own router).",
    ),
)


def _options(params: dict, model, total_steps) -> dict:
    return dict(r=params["r"], num_B=params["num_B"])


METHOD = tuner(
    "lily",
    "Lily",
    "LilyConfig",
    description="Low-rank adapters that share their up-projections across layers: a higher rank for the weights.",
    paper="https://arxiv.org/abs/2407.09946",
    params=PARAMS,
    options=_options,
    learning_rate=1e-3,
    linear_layers_only=True,
)
