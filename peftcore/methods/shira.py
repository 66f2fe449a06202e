"""SHiRA: train a sparse, fixed subset of each weight's entries (Bhardwaj et al., 2024), through peft."""

from __future__ import annotations

from ..schema import Param
from ._catalogue import rank, tuner

PARAMS = (
    rank(
        8,
        "How many entries of each weight train: r x (rows + columns), as many as a LoRA of rank r, but spread "
        "over the whole weight, so the update is high-rank.",
        label="Budget (rank)",
    ),
    Param(
        "random_seed",
        "int",
        0,
        min=0,
        max=2**31 - 1,
        label="Mask seed",
        help="Chooses which entries train; the mask is saved with the adapter.",
    ),
)


def _options(params: dict, model, total_steps) -> dict:
    return dict(r=params["r"], mask_type="random", random_seed=params["random_seed"])


METHOD = tuner(
    "shira",
    "SHiRA",
    "ShiraConfig",
    description="Trains a scattered 1-2% of each weight's own entries: a high-rank update that swaps in fast.",
    paper="https://arxiv.org/abs/2406.13175",
    params=PARAMS,
    options=_options,
    learning_rate=1e-3,
    family="selective",
    linear_layers_only=True,
    needs_weight_values=True,  # the mask is drawn with torch.nonzero, which the meta device cannot run
)
