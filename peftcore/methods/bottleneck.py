"""Bottleneck adapters (Houlsby et al., 2019; Pfeiffer et al., 2020): a small down-projection, a nonlinearity
and an up-projection (initialised to zero, so training starts from the base model) with a residual, inserted
after the output projection of the attention and/or feed-forward sub-layer of each chosen block.
"houlsby" adapts both sub-layers, "pfeiffer" only the feed-forward one. Trainable per adapter:
2 x hidden x width + width + hidden, with width = hidden // reduction factor (plus the task head)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..schema import Param
from ..tasks import TASKS_WITHOUT_REFERENCE
from . import Method, register
from ._common import MethodBuildError
from ._placement import PlacementError, output_regex, placement_params

CONFIGS = {"pfeiffer": "ffn", "houlsby": "both"}  # adapter configuration -> the sub-layers adapted

PARAMS = (
    Param(
        "config",
        "choice",
        "pfeiffer",
        choices=tuple(CONFIGS),
        label="Configuration",
        help="'pfeiffer': one adapter after each block's feed-forward layer; 'houlsby': one after attention "
        "and one after the feed-forward layer (twice the weights, rarely better).",
    ),
    Param(
        "reduction_factor",
        "int",
        16,
        min=1,
        max=1024,
        label="Reduction factor",
        help="The adapter's width is the hidden size divided by this: 16 on a 384-wide model gives 24. "
        "Smaller factors train more weights.",
    ),
    Param(
        "activation",
        "choice",
        "relu",
        choices=("relu", "gelu", "swish", "tanh"),
        label="Nonlinearity",
        help="The nonlinearity between the down- and up-projection.",
    ),
    placement_params(default="ffn")[1],  # layers
)


def build(model, params: dict, task: str, *, new_modules: Sequence[str] = (), total_steps: int | None = None):
    from ._torch_parts import BOTTLENECK, add_bottleneck, freeze_all_but

    try:
        pattern = re.compile(output_regex(model.config, CONFIGS[params["config"]], params["layers"]))
    except PlacementError as exc:
        raise MethodBuildError(str(exc)) from exc
    adapted = [module for name, module in model.named_modules() if pattern.fullmatch(name)]
    if not adapted:
        raise MethodBuildError("Bottleneck adapters found no sub-layer outputs to adapt in this model")
    for module in adapted:
        add_bottleneck(module, params["reduction_factor"], params["activation"])
    freeze_all_but(model, lambda name: f".{BOTTLENECK}." in name, new_modules)
    return model


METHOD = register(
    Method(
        name="bottleneck",
        label="Bottleneck adapters",
        family="additive",
        description="Inserts a small two-layer network after parts of every block; the classic adapter, a "
        "percent or so of the model's weights.",
        paper="https://arxiv.org/abs/1902.00751",
        params=PARAMS,
        tasks=TASKS_WITHOUT_REFERENCE,
        recommended_learning_rate=1e-3,
        can_merge=False,  # the nonlinearity keeps the adapter from folding into the base weights
        build=build,
        acts_on=("attention", "ffn"),
        how="adds",
        saved_as="peftcore",
    )
)
