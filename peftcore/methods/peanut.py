"""PEANuT: a small non-linear network that computes the weight update from the weight itself (Zhong et al.,
2024), through peft."""

from __future__ import annotations

from ..schema import Param
from ._catalogue import tuner

PARAMS = (
    Param("r", "int", 8, min=1, max=256, label="Rank", help="The hidden width of the update network, as LoRA's rank."),
    Param(
        "depth",
        "int",
        0,
        min=0,
        max=4,
        label="Depth",
        help="Hidden layers of the update network; 0 is a single non-linear bottleneck.",
    ),
)


def _options(params: dict, model, total_steps) -> dict:
    return dict(r=params["r"], depth=params["depth"])


METHOD = tuner(
    "peanut",
    "PEANuT",
    "PeanutConfig",
    description="A tiny network turns each weight into its own update: non-linear, LoRA's budget.",
    paper="https://arxiv.org/abs/2410.01870",
    params=PARAMS,
    options=_options,
    learning_rate=1e-3,
    linear_layers_only=True,
)
