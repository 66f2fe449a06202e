"""RED, representation editing (Wu et al., 2024): a learned scale vector (init 1) and bias vector (init 0)
applied to the hidden representation output by each chosen layer's FFN (or attention) sub-layer.
Trainable: 2 x hidden size x edited sub-layers (plus the task head)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..tasks import TASKS_WITHOUT_REFERENCE
from . import Method, register
from ._common import MethodBuildError
from ._placement import PlacementError, output_regex, placement_params

PARAMS = placement_params(default="ffn")


def build(model, params: dict, task: str, *, new_modules: Sequence[str] = (), total_steps: int | None = None):
    from ._torch_parts import RED_BIAS, RED_SCALE, add_red_edit, freeze_all_but

    try:
        pattern = re.compile(output_regex(model.config, params["placement"], params["layers"]))
    except PlacementError as exc:
        raise MethodBuildError(str(exc)) from exc
    edited = [module for name, module in model.named_modules() if pattern.fullmatch(name)]
    if not edited:
        raise MethodBuildError("RED found no layer outputs to edit in this model")
    for module in edited:
        add_red_edit(module)
    freeze_all_but(model, lambda n: n.endswith((f".{RED_SCALE}", f".{RED_BIAS}")), new_modules)
    return model


METHOD = register(
    Method(
        name="red",
        label="RED",
        family="representation",
        description="Learns one scale and one shift per feature of each block's output; thousands of times "
        "fewer weights than full fine-tuning.",
        paper="https://arxiv.org/abs/2402.15179",
        params=PARAMS,
        tasks=TASKS_WITHOUT_REFERENCE,
        recommended_learning_rate=1e-2,
        can_merge=True,  # scale and bias fold into the edited layer's weight and bias
        build=build,
        acts_on=("representation",),
        how="adds",
        saved_as="peftcore",
    )
)
