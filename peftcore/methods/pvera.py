"""PVeRA: VeRA with a probabilistic shared projection (arXiv:2512.07703), through peft."""

from __future__ import annotations

from ._catalogue import dropout, rank, tuner

PARAMS = (
    rank(
        256,
        "The rank of the shared random projections; only two small vectors per layer train, so a high rank is cheap.",
        max=4096,
    ),
    dropout("pvera_dropout"),
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
