"""VeRA: frozen random low-rank matrices shared by all layers, with small trained scaling vectors per layer
(Kopiczko et al., 2024), through peft."""

from __future__ import annotations

from ..schema import Param
from ..tasks import ALL_TASKS
from . import Method, register
from ._common import peft_builder, targeting_params

PARAMS = (
    Param(
        "r",
        "int",
        256,
        min=1,
        max=4096,
        label="Rank",
        help="The rank of the shared random matrices. A high rank costs only memory for the frozen matrices: "
        "the trained vectors grow slowly with it.",
    ),
    Param(
        "vera_dropout",
        "float",
        0.0,
        min=0.0,
        max=0.9,
        label="Dropout",
        help="Randomly switches off part of the update while training, against over-fitting.",
    ),
    Param(
        "d_initial",
        "float",
        0.1,
        min=0.0,
        max=10.0,
        label="Initial scale",
        help="The starting value of the trained scaling vector; the default suits most models.",
    ),
    *targeting_params("peft's usual layers for this model (query and value in BERT)"),
)


def _options(params: dict, model, total_steps) -> dict:
    return dict(
        r=params["r"], vera_dropout=params["vera_dropout"], d_initial=params["d_initial"], save_projection=True
    )  # the random matrices travel with the adapter, so it loads anywhere


METHOD = register(
    Method(
        name="vera",
        label="VeRA",
        family="reparameterised",
        description="Shares one pair of frozen random matrices across all layers and trains only small "
        "scaling vectors: far fewer weights than LoRA.",
        paper="https://arxiv.org/abs/2310.11454",
        params=PARAMS,
        tasks=ALL_TASKS,
        recommended_learning_rate=1e-2,
        can_merge=True,
        build=peft_builder("VeraConfig", "VeRA", _options, "TRANSFORMERS_MODELS_TO_VERA_TARGET_MODULES_MAPPING"),
        acts_on=("attention",),
        how="reparameterises",
    )
)
