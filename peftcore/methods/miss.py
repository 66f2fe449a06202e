"""MiSS (formerly Bone): one shared small matrix per layer, expanded over the weight's blocks (Kang & Yin, 2024),
through peft."""

from __future__ import annotations

from ._catalogue import dropout, rank, tuner

PARAMS = (
    rank(
        8,
        "The size of the shared block (an even number that divides the layers' sizes): about r x the "
        "layer's input size weights per layer.",
        min=2,
    ),
    dropout("miss_dropout"),
)


def _options(params: dict, model, total_steps) -> dict:
    from ._common import MethodBuildError

    if params["r"] % 2:
        raise MethodBuildError("MiSS: the rank must be an even number")
    return dict(r=params["r"], miss_dropout=params["miss_dropout"])


METHOD = tuner(
    "miss",
    "MiSS",
    "MissConfig",
    description="Learns one small shared block per layer, tiled over the weight: LoRA's budget, faster to train.",
    paper="https://arxiv.org/abs/2409.15371",
    params=PARAMS,
    options=_options,
    learning_rate=1e-3,
    linear_layers_only=True,
)
