"""BOFT: orthogonal fine-tuning with butterfly-factorised rotations (Liu et al., 2024), through peft."""

from __future__ import annotations

from ..schema import Param
from ..tasks import ALL_TASKS
from . import Method, linear_only, register
from ._common import peft_builder, targeting_params

PARAMS = (
    Param(
        "boft_block_size",
        "int",
        4,
        min=2,
        max=256,
        label="Block size",
        help="The size of each small rotation; it must divide the layer width.",
    ),
    Param(
        "boft_n_butterfly_factor",
        "int",
        1,
        min=1,
        max=8,
        label="Butterfly factors",
        help="How many butterfly stages are chained; more stages mix more of the width but cost more time.",
    ),
    Param(
        "boft_dropout",
        "float",
        0.0,
        min=0.0,
        max=0.9,
        label="Dropout",
        help="The chance of leaving a rotation block out for one step, against over-fitting.",
    ),
    *targeting_params("peft's usual layers for this model (query and value in BERT)"),
)


def _options(params: dict, model, total_steps) -> dict:
    return dict(
        boft_block_size=params["boft_block_size"],
        boft_n_butterfly_factor=params["boft_n_butterfly_factor"],
        boft_dropout=params["boft_dropout"],
    )


METHOD = register(
    Method(
        name="boft",
        label="BOFT",
        family="reparameterised",
        description="Orthogonal fine-tuning with rotations built from many tiny blocks, so it trains fewer "
        "weights than OFT.",
        paper="https://arxiv.org/abs/2311.06243",
        params=PARAMS,
        tasks=ALL_TASKS,
        recommended_learning_rate=1e-2,  # bench/sweep.py on SST-2: better than 1e-3 and 3e-3 (docs/benchmarks.md)
        can_merge=True,
        build=peft_builder("BOFTConfig", "BOFT", _options, "TRANSFORMERS_MODELS_TO_BOFT_TARGET_MODULES_MAPPING"),
        acts_on=("attention",),
        how="reparameterises",
        refusals=linear_only("BOFT"),
    )
)
