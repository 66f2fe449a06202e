"""Super-Tuning: a sparse set of each weight's entries, chosen by magnitude, trains; optionally with a LoRA beside
it ("Supra") (arXiv:2607.09287), through peft."""

from __future__ import annotations

from ..schema import Param
from ._catalogue import tuner

PARAMS = (
    Param(
        "sparsity",
        "float",
        0.99,
        min=0.5,
        max=0.9999,
        label="Sparsity",
        help="The share of each weight's entries left frozen: 0.99 trains the 1% largest.",
    ),
    Param(
        "select_top",
        "bool",
        True,
        label="Train the largest entries",
        help="On: the largest-magnitude entries train (the paper's Super); off: the smallest.",
    ),
    Param(
        "r",
        "int",
        0,
        min=0,
        max=256,
        label="LoRA rank beside it (Supra)",
        help="0: the sparse entries alone; above 0, a LoRA of this rank trains beside them.",
    ),
)


def _options(params: dict, model, total_steps) -> dict:
    return dict(sparsity=params["sparsity"], select_top=params["select_top"], r=params["r"] or None)


METHOD = tuner(
    "supertuning",
    "Super-Tuning",
    "SupertuningConfig",
    family="selective",
    how="selects",
    description="Trains the 1% largest entries of each weight in place (a sparse update), optionally with a LoRA.",
    paper="https://arxiv.org/abs/2607.09287",
    params=PARAMS,
    options=_options,
    learning_rate=1e-3,
    linear_layers_only=True,
    needs_weight_values=True,  # the support is picked by the weights' magnitudes
)
