"""HRA: adapt weights by a chain of Householder reflections (Yuan et al., 2024), through peft."""

from __future__ import annotations

from ..schema import Param
from ..tasks import ALL_TASKS
from . import Method, linear_only, register
from ._common import peft_builder, targeting_params

PARAMS = (
    Param(
        "r",
        "int",
        8,
        min=2,
        max=256,
        label="Reflections",
        help="How many reflections are chained per layer (an even number); more can express more.",
    ),
    Param(
        "apply_GS",
        "bool",
        False,
        label="Orthogonalise",
        help="Keep the reflections exactly orthogonal (Gram-Schmidt); slower, sometimes steadier.",
    ),
    *targeting_params("peft's usual layers for this model (query and value in BERT)"),
)


def _options(params: dict, model, total_steps) -> dict:
    from ._common import MethodBuildError

    if params["r"] % 2:
        raise MethodBuildError("HRA: the number of reflections must be even")
    return dict(r=params["r"], apply_GS=params["apply_GS"])


METHOD = register(
    Method(
        name="hra",
        label="HRA",
        family="reparameterised",
        description="Turns each adapted weight with a few mirror reflections; bridges LoRA and orthogonal fine-tuning.",
        paper="https://arxiv.org/abs/2405.17484",
        params=PARAMS,
        tasks=ALL_TASKS,
        recommended_learning_rate=1e-2,  # bench/sweep.py on SST-2: better than 1e-3 and 3e-3 (docs/benchmarks.md)
        can_merge=True,
        build=peft_builder("HRAConfig", "HRA", _options, "TRANSFORMERS_MODELS_TO_HRA_TARGET_MODULES_MAPPING"),
        acts_on=("attention",),
        how="reparameterises",
        refusals=linear_only("HRA"),
    )
)
