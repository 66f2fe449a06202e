"""DeFT (decompositional): a learned low-rank subspace is removed from each weight and a learned update injected in
its place, W' = (I - P P+) W + P R (peft's DEFT tuner). Not the DEFT activation-density loss, which is a training
option for any method (`density_loss`, peftcore/density.py)."""

from __future__ import annotations

from ..schema import Param
from ._catalogue import dropout, rank, tuner

PARAMS = (
    rank(),
    Param(
        "decomposition_method",
        "choice",
        "relu",
        choices=("relu", "qr"),
        label="Projection",
        help="relu: peft's default non-orthogonal projection; qr: an orthogonal projection (a QR factorisation a step).",
    ),
    Param(
        "para",
        "bool",
        False,
        label="Removal only (PaRa)",
        help="Only remove the learned subspace, with nothing injected: half the parameters, and the model changes "
        "from the first step.",
    ),
    dropout("deft_dropout"),
)


def _options(params: dict, model, total_steps) -> dict:
    return dict(
        r=params["r"],
        decomposition_method=params["decomposition_method"],
        para=params["para"],
        deft_dropout=params["deft_dropout"],
    )


METHOD = tuner(
    "deft",
    "DeFT (subspace removal and injection)",
    "DeftConfig",
    description="Removes a learned low-rank subspace from each weight and injects a learned update in its place.",
    paper="https://huggingface.co/docs/peft/package_reference/deft",
    params=PARAMS,
    options=_options,
    learning_rate=1e-3,
    linear_layers_only=True,
)
