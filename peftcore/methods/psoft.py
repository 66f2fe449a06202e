"""PSOFT: orthogonal fine-tuning inside each weight's principal subspace (ICLR 2026), through peft."""

from __future__ import annotations

from ._catalogue import rank, tuner

PARAMS = (
    rank(
        8,
        "How many of each weight's main singular directions are rotated; only an r x r rotation per layer trains.",
        label="Subspace rank",
    ),
)


def _options(params: dict, model, total_steps) -> dict:
    return dict(r=params["r"], psoft_alpha=params["r"])  # alpha = r: the rotation's update is not rescaled


METHOD = tuner(
    "psoft",
    "PSOFT",
    "PsoftConfig",
    description="Rotates each weight's main directions with a small orthogonal matrix: keeps the model's geometry.",
    paper="https://openreview.net/forum?id=FSHrinMArK",
    params=PARAMS,
    options=_options,
    learning_rate=3e-3,
    linear_layers_only=True,
    needs_weight_values=True,
)
