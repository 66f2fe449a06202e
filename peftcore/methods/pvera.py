"""PVeRA: VeRA with a probabilistic shared projection (arXiv:2512.07703), through peft."""

from __future__ import annotations

from ..schema import Param
from ._catalogue import tuner

PARAMS = (
    Param(
        "r",
        "int",
        256,
        min=1,
        max=4096,
        label="Rank",
        help="The rank of the shared random projections; only two small vectors per layer train, so a high rank "
        "is cheap.",
    ),
    Param(
        "pvera_dropout",
        "float",
        0.0,
        min=0.0,
        max=0.9,
        label="Dropout",
        help="Randomly switches off part of the input to the update while training.",
    ),
)


def _options(params: dict, model, total_steps) -> dict:
    return dict(r=params["r"], pvera_dropout=params["pvera_dropout"], save_projection=True)


METHOD = tuner(
    "pvera",
    "PVeRA",
    "PveraConfig",
    description="VeRA's shared random matrices with a learned probabilistic scaling: very few trained weights.",
    paper="https://arxiv.org/abs/2512.07703",
    params=PARAMS,
    options=_options,
    learning_rate=1e-2,  # as VeRA: only scaling vectors train
)
