"""What LoHa and LoKr share: both are LyCORIS weight-update factorisations that peft builds the same way, from
a rank, an alpha, a module dropout and the usual layer targeting. Only the factorisation (peft's config class)
and the words differ."""

from __future__ import annotations

from ..schema import Param
from ..tasks import ALL_TASKS
from . import Method, linear_only, register
from ._common import peft_builder, targeting_params


def _options(params: dict, model, total_steps) -> dict:
    return dict(r=params["r"], alpha=params["alpha"], module_dropout=params["module_dropout"])


def register_lycoris(*, name: str, label: str, rank_help: str, description: str, paper: str) -> Method:
    """Register the method whose peft config class is <label>Config (LoHaConfig, LoKrConfig)."""
    params = (
        Param("r", "int", 8, min=1, max=256, label="Rank", help=rank_help),
        Param(
            "alpha", "int", 8, min=1, max=1024, label="Alpha", help="Scales the learned update (alpha divided by rank)."
        ),
        Param(
            "module_dropout",
            "float",
            0.0,
            min=0.0,
            max=0.9,
            label="Module dropout",
            help="The chance of switching off a whole adapted layer for one step, against over-fitting.",
        ),
        *targeting_params("peft's usual layers for this model (query and value in BERT)"),
    )
    mapping = f"TRANSFORMERS_MODELS_TO_{name.upper()}_TARGET_MODULES_MAPPING"
    return register(
        Method(
            name=name,
            label=label,
            family="reparameterised",
            description=description,
            paper=paper,
            params=params,
            tasks=ALL_TASKS,
            recommended_learning_rate=1e-2,  # bench/sweep.py on SST-2: better than 1e-3 and 3e-3 (docs/benchmarks.md)
            can_merge=True,
            build=peft_builder(f"{label}Config", label, _options, mapping),
            acts_on=("attention",),
            how="reparameterises",
            refusals=linear_only(label),
        )
    )
