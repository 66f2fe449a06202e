"""HiRA: a high-rank update as the Hadamard product of the weight with a low-rank matrix (Huang et al., 2025),
through peft."""

from __future__ import annotations

from ._catalogue import dropout, rank, tuner

PARAMS = (
    rank(
        8,
        "The rank of the low-rank factor; multiplied entry by entry with the weight, the update is high-rank.",
    ),
    dropout("hira_dropout"),
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
