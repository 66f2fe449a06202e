"""C3A: the weight update as a block-circular convolution (Chen et al., 2025), through peft."""

from __future__ import annotations

from ..schema import Param
from ._catalogue import shared_divisor, tuner

PARAMS = (
    Param(
        "block_size",
        "int",
        None,
        min=1,
        max=4096,
        optional=True,
        label="Block size",
        help="The size of each circular block; must divide every adapted layer's input and output sizes. Smaller "
        "blocks train more weights (input x output / block size per layer). Leave empty for the largest size up "
        "to 256 that divides them all.",
    ),
)


def _options(params: dict, model, total_steps) -> dict:
    return dict(block_size=params["block_size"] or shared_divisor(model, params, 256, "C3A"))


METHOD = tuner(
    "c3a",
    "C3A",
    "C3AConfig",
    description="Learns each weight change as circular convolutions computed with FFTs: high rank, few weights.",
    paper="https://arxiv.org/abs/2407.19342",
    params=PARAMS,
    options=_options,
    learning_rate=1e-2,
    linear_layers_only=True,
)
