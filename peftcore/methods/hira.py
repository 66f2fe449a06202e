"""HiRA: a high-rank update as the Hadamard product of the weight with a low-rank matrix (Huang et al., 2025),
through peft."""

from __future__ import annotations

from ..schema import Param
from ._catalogue import tuner

PARAMS = (
    Param(
        "r",
        "int",
        8,
        min=1,
        max=256,
        label="Rank",
        help="The rank of the low-rank factor; multiplied entry by entry with the weight, the update is high-rank.",
    ),
    Param(
        "hira_dropout",
        "float",
        0.0,
        min=0.0,
        max=0.9,
        label="Dropout",
        help="Randomly switches off part of the input to the update while training.",
    ),
)


def _options(params: dict, model, total_steps) -> dict:
    return dict(r=params["r"], hira_dropout=params["hira_dropout"])


METHOD = tuner(
    "hira",
    "HiRA",
    "HiraConfig",
    description="Multiplies each weight entry by a learned low-rank pattern: LoRA's budget, a high-rank change.",
    paper="https://openreview.net/forum?id=TwJrTz9cRS",
    params=PARAMS,
    options=_options,
    learning_rate=3e-3,  # the update is scaled by the weight's own entries, which are small
)
