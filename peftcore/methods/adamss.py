"""AdaMSS: each weight's top singular directions are clustered into subspaces, and a small low-rank update trains
in each (Adaptive Multi-Subspaces), through peft. Its adaptive subspace allocation (ASA) needs hooks in the
training loop and is left off."""

from __future__ import annotations

from ..schema import Param
from ._catalogue import rank, tuner

PARAMS = (
    rank(
        100, help="How many singular directions of each weight are kept and clustered (clamped to its size).", max=1024
    ),
    Param(
        "num_subspaces",
        "int",
        5,
        min=1,
        max=64,
        label="Subspaces",
        help="How many clusters the singular directions form; each learns its own update.",
    ),
    Param(
        "subspace_rank",
        "int",
        1,
        min=1,
        max=64,
        label="Rank per subspace",
        help="The rank of each subspace's update; 1 to 4 works for most tasks.",
    ),
)


def _options(params: dict, model, total_steps) -> dict:
    return dict(r=params["r"], num_subspaces=params["num_subspaces"], subspace_rank=params["subspace_rank"])


METHOD = tuner(
    "adamss",
    "AdaMSS",
    "AdamssConfig",
    description="Clusters each weight's main directions into subspaces and learns a tiny update in each.",
    paper="https://huggingface.co/docs/peft/package_reference/adamss",
    params=PARAMS,
    options=_options,
    learning_rate=1e-3,
    linear_layers_only=True,
    needs_weight_values=True,  # an SVD of each weight
)
