"""TinyLoRA: a tiny trained vector per layer, projected through fixed random tensors onto the weight's own
singular directions (arXiv:2602.04118), through peft."""

from __future__ import annotations

from ..schema import Param
from ._catalogue import rank, tuner

PARAMS = (
    rank(
        2,
        "How many of each weight's main singular directions the update acts on (the paper uses 2).",
        max=64,
        label="SVD rank",
    ),
    Param(
        "u",
        "int",
        64,
        min=1,
        max=4096,
        label="Trained size",
        help="The length of the trained vector per layer: the whole adapter is this many weights per layer.",
    ),
    Param(
        "weight_tying",
        "float",
        0.0,
        min=0.0,
        max=1.0,
        label="Sharing",
        help="How much the layers share one trained vector: 0 none, 1 all layers share one.",
    ),
)


def _options(params: dict, model, total_steps) -> dict:
    return dict(r=params["r"], u=params["u"], weight_tying=params["weight_tying"], save_projection=True)


METHOD = tuner(
    "tinylora",
    "TinyLoRA",
    "TinyLoraConfig",
    description="Trains a few dozen numbers per layer along the weight's own main directions: the smallest adapter.",
    paper="https://arxiv.org/abs/2602.04118",
    params=PARAMS,
    options=_options,
    learning_rate=1e-2,
    needs_weight_values=True,
)
