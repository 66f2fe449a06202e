"""FourierFT: learn a few spectral coefficients of each weight update (Gao et al., 2024), through peft."""

from __future__ import annotations

from ..schema import Param
from ..tasks import ALL_TASKS
from . import Method, register
from ._common import peft_builder, targeting_params

PARAMS = (
    Param(
        "n_frequency",
        "int",
        1000,
        min=1,
        max=100000,
        label="Frequencies",
        help="How many spectral coefficients are learned per adapted layer; must not exceed the layer's size "
        "(input x output).",
    ),
    Param(
        "scaling",
        "float",
        150.0,
        min=0.01,
        max=10000.0,
        label="Scaling",
        help="Scales the update, like LoRA's alpha; 100 to 300 works for most models.",
    ),
    *targeting_params("peft's usual layers for this model (query and value in BERT)"),
)


def _options(params: dict, model, total_steps) -> dict:
    return dict(n_frequency=params["n_frequency"], scaling=params["scaling"])


METHOD = register(
    Method(
        name="fourierft",
        label="FourierFT",
        family="reparameterised",
        description="Learns a weight change as a handful of frequency coefficients: very few trained weights.",
        paper="https://arxiv.org/abs/2405.03003",
        params=PARAMS,
        tasks=ALL_TASKS,
        recommended_learning_rate=3e-3,
        can_merge=True,
        build=peft_builder(
            "FourierFTConfig", "FourierFT", _options, "TRANSFORMERS_MODELS_TO_FOURIERFT_TARGET_MODULES_MAPPING"
        ),
        acts_on=("attention",),
        how="reparameterises",
    )
)
