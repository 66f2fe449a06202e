"""WaveFT: learn a few wavelet coefficients of each weight update (Bilican et al., 2025), through peft."""

from __future__ import annotations

from ..schema import Param
from ._catalogue import tuner

PARAMS = (
    Param(
        "n_frequency",
        "int",
        1000,
        min=1,
        max=1_000_000,
        label="Coefficients",
        help="How many wavelet coefficients are learned per adapted layer; must not exceed the layer's size "
        "(input x output).",
    ),
    Param(
        "scaling",
        "float",
        25.0,
        min=0.01,
        max=10000.0,
        label="Scaling",
        help="Scales the update, like LoRA's alpha.",
    ),
)


def _options(params: dict, model, total_steps) -> dict:
    return dict(n_frequency=params["n_frequency"], scaling=params["scaling"])


METHOD = tuner(
    "waveft",
    "WaveFT",
    "WaveFTConfig",
    description="Learns each weight change as a handful of wavelet coefficients: very few trained weights.",
    paper="https://arxiv.org/abs/2505.12532",
    params=PARAMS,
    options=_options,
    learning_rate=3e-3,
)
