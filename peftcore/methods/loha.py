"""LoHa: a weight update built from the Hadamard product of two low-rank products (Hyeon-Woo et al., 2022)."""

from __future__ import annotations

from ..schema import Param
from ..tasks import ALL_TASKS
from . import Method, linear_only, register
from ._common import peft_builder, targeting_params

PARAMS = (
    Param("r", "int", 8, min=1, max=256, label="Rank",
          help="The size of each low-rank factor. The product of two rank-r factors can express rank r², so small "
          "ranks go a long way."),
    Param("alpha", "int", 8, min=1, max=1024, label="Alpha", help="Scales the learned update (alpha divided by rank)."),
    Param("module_dropout", "float", 0.0, min=0.0, max=0.9, label="Module dropout",
          help="The chance of switching off a whole adapted layer for one step, against over-fitting."),
    *targeting_params("peft's usual layers for this model (query and value in BERT)"),
)


def _options(params: dict, model, total_steps) -> dict:
    return dict(r=params["r"], alpha=params["alpha"], module_dropout=params["module_dropout"])


METHOD = register(
    Method(
        name="loha",
        label="LoHa",
        family="reparameterised",
        description="A LoRA relative that multiplies two small updates element by element, reaching more with "
        "the same number of weights.",
        paper="https://arxiv.org/abs/2108.06098",
        params=PARAMS,
        tasks=ALL_TASKS,
        recommended_learning_rate=1e-2,  # bench/sweep.py on SST-2: better than 1e-3 and 3e-3 (docs/benchmarks.md)
        can_merge=True,
        build=peft_builder("LoHaConfig", "LoHa", _options, "TRANSFORMERS_MODELS_TO_LOHA_TARGET_MODULES_MAPPING"),
        acts_on=("attention",),
        how="reparameterises",
        refusals=linear_only("LoHa"),
    )
)
