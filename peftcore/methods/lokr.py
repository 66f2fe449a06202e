"""LoKr: a weight update written as a Kronecker product of a small and a low-rank matrix (Yeh et al., 2023)."""

from __future__ import annotations

from ..schema import Param
from ..tasks import ALL_TASKS
from . import Method, linear_only, register
from ._common import peft_builder, targeting_params

PARAMS = (
    Param("r", "int", 8, min=1, max=256, label="Rank", help="The rank of the larger Kronecker factor."),
    Param("alpha", "int", 8, min=1, max=1024, label="Alpha", help="Scales the learned update (alpha divided by rank)."),
    Param("module_dropout", "float", 0.0, min=0.0, max=0.9, label="Module dropout",
          help="The chance of switching off a whole adapted layer for one step, against over-fitting."),
    *targeting_params("peft's usual layers for this model (query and value in BERT)"),
)


def _options(params: dict, model, total_steps) -> dict:
    return dict(r=params["r"], alpha=params["alpha"], module_dropout=params["module_dropout"])


METHOD = register(
    Method(
        name="lokr",
        label="LoKr",
        family="reparameterised",
        description="A LoRA relative built from a Kronecker product; very few weights for a full-size update.",
        paper="https://arxiv.org/abs/2309.14859",
        params=PARAMS,
        tasks=ALL_TASKS,
        recommended_learning_rate=1e-2,  # bench/sweep.py on SST-2: better than 1e-3 and 3e-3 (docs/benchmarks.md)
        can_merge=True,
        build=peft_builder("LoKrConfig", "LoKr", _options, "TRANSFORMERS_MODELS_TO_LOKR_TARGET_MODULES_MAPPING"),
        acts_on=("attention",),
        how="reparameterises",
        refusals=linear_only("LoKr"),
    )
)
