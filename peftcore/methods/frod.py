"""FRoD: full-rank updates from a sparse fixed random pattern with trained values (AAAI 2026), through peft."""

from __future__ import annotations

from ..schema import Param
from ._catalogue import dropout, tuner

PARAMS = (
    Param(
        "sparse_rate",
        "float",
        0.01,
        min=0.0001,
        max=0.5,
        label="Sparse share",
        help="The share of each weight's entries in the random pattern that trains.",
    ),
    dropout("frod_dropout"),
)


def _options(params: dict, model, total_steps) -> dict:
    return dict(
        sparse_rate=params["sparse_rate"],
        frod_dropout=params["frod_dropout"],
        save_projection=True,
        progressbar=False,  # the studio's log shows its own progress
    )


METHOD = tuner(
    "frod",
    "FRoD",
    "FrodConfig",
    description="Full-rank weight changes through a fixed sparse random pattern: few trained weights.",
    paper="https://doi.org/10.1609/aaai.v40i31.39813",
    params=PARAMS,
    options=_options,
    learning_rate=1e-3,
    needs_weight_values=True,  # the pattern is drawn from the weight's values
)
