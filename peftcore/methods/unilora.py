"""Uni-LoRA: every layer's LoRA factors projected from one small shared trained vector (Li et al., 2025),
through peft."""

from __future__ import annotations

from ..schema import Param
from ._catalogue import dropout, rank, tuner

PARAMS = (
    rank(4),
    Param(
        "theta_d_length",
        "int",
        256,
        min=1,
        max=1_000_000,
        label="Trained size",
        help="The length of the one trained vector all layers' updates are projected from: the whole adapter.",
    ),
    dropout("unilora_dropout"),
)


def _options(params: dict, model, total_steps) -> dict:
    return dict(
        r=params["r"],
        theta_d_length=params["theta_d_length"],
        unilora_dropout=params["unilora_dropout"],
        save_indices=True,  # the adapter folder is complete without regenerating the projection
    )


METHOD = tuner(
    "unilora",
    "Uni-LoRA",
    "UniLoraConfig",
    description="All of the model's LoRA weights come from one short trained vector: an adapter of a few hundred numbers.",
    paper="https://arxiv.org/abs/2506.00799",
    params=PARAMS,
    options=_options,
    learning_rate=1e-2,
)
