"""DeLoRA: a normalised low-rank update with a learned bound on its size (Bini et al., 2025), through peft."""

from __future__ import annotations

from ..schema import Param
from ._catalogue import rank, tuner

PARAMS = (
    rank(),
    Param(
        "delora_lambda",
        "int",
        # peft's default is 15 (tuned on LLMs). The first step gives B unit columns, so the update jumps to about
        # lambda / r x the weight's norm: at 15 the bundled MiniLM stayed on the majority class at every rate
        # from 1e-4 to 1e-2; at 3 it matched LoRA (docs/benchmarks.md)
        3,
        min=1,
        max=1000,
        label="Boundary",
        help="The starting bound on the update's size relative to the weight's (it is learned); the normalisation "
        "makes training robust to the learning rate. peft's default, 15, suits large LLMs; on small models it "
        "can swamp the weights from the first step.",
    ),
)


def _options(params: dict, model, total_steps) -> dict:
    return dict(r=params["r"], delora_lambda=params["delora_lambda"])


METHOD = tuner(
    "delora",
    "DeLoRA",
    "DeloraConfig",
    description="LoRA with each update normalised and its size bounded: steadier when the rate is off.",
    paper="https://arxiv.org/abs/2503.18225",
    params=PARAMS,
    options=_options,
    learning_rate=1e-3,
    linear_layers_only=True,
)
