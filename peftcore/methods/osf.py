"""OSF: fine-tune only the low singular directions of each weight, keeping the top ones fixed (Nayak et al.,
2025), through peft."""

from __future__ import annotations

from ..schema import Param
from ._catalogue import tuner

PARAMS = (
    Param(
        "effective_rank",
        "float",
        0.5,
        min=0.01,
        max=0.99,
        label="Kept share",
        help="The share of each weight's singular directions kept frozen (the main ones); the rest train. Higher "
        "keeps more of what the model knows, lower trains more weights.",
    ),
)


def _options(params: dict, model, total_steps) -> dict:
    return dict(effective_rank=params["effective_rank"])


METHOD = tuner(
    "osf",
    "OSF",
    "OSFConfig",
    description="Trains only each weight's minor directions, keeping the main ones: for learning without forgetting.",
    paper="https://arxiv.org/abs/2504.07097",
    params=PARAMS,
    options=_options,
    learning_rate=1e-4,  # it trains a large share of each weight, so full fine-tuning's order of rate
    needs_weight_values=True,
    linear_layers_only=True,
)
