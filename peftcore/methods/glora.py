"""GLoRA: one generalised update that scales and shifts each weight and its bias (Chavan et al., 2023), through
peft."""

from __future__ import annotations

from ..schema import Param
from ._catalogue import tuner

PARAMS = (
    Param("r", "int", 8, min=1, max=256, label="Rank", help="The rank of the parts learned as low-rank matrices."),
    Param(
        "config_A_B",
        "choice",
        "lora",
        choices=("lora", "vector", "constant", "none"),
        label="Weight scale and shift",
        help="How the weight's multiplicative and additive corrections are learned: low-rank, one vector, one "
        "number, or not at all.",
    ),
)


def _options(params: dict, model, total_steps) -> dict:
    return dict(r=params["r"], config_A_B=params["config_A_B"])


METHOD = tuner(
    "glora",
    "GLoRA",
    "GloraConfig",
    description="Scales and shifts both weights and biases with low-rank terms: LoRA and IA3 in one.",
    paper="https://arxiv.org/abs/2306.07967",
    params=PARAMS,
    options=_options,
    learning_rate=1e-3,
    linear_layers_only=True,
)
