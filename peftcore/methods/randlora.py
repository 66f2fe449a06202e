"""RandLoRA: a full-rank update from many fixed random low-rank bases with learned scales (Albert et al., 2025),
through peft."""

from __future__ import annotations

from ..schema import Param
from ._catalogue import dropout, rank, tuner

PARAMS = (
    rank(
        32,
        "The rank of each random basis; smaller ranks use more bases, so the update stays full-rank either way.",
        max=1024,
        label="Basis rank",
    ),
    dropout("randlora_dropout"),
    Param(
        "sparse",
        "bool",
        False,
        label="Sparse bases",
        help="Draw the random bases sparse (entries -1, 0, 1): less memory and compute, about the same result.",
    ),
)


def _options(params: dict, model, total_steps) -> dict:
    return dict(
        r=params["r"],
        randlora_alpha=20 * params["r"],  # the paper's scale: 20 x the basis rank
        randlora_dropout=params["randlora_dropout"],
        sparse=params["sparse"],
        save_projection=True,  # the adapter folder is complete without the random seed's generator
    )


METHOD = tuner(
    "randlora",
    "RandLoRA",
    "RandLoraConfig",
    description="Full-rank updates from fixed random bases; only small scaling vectors train.",
    paper="https://arxiv.org/abs/2502.00987",
    params=PARAMS,
    options=_options,
    learning_rate=1e-3,
)
