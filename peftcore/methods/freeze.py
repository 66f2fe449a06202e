"""Freeze: train only the last N transformer blocks and the task head; the rest of the model stays fixed."""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..schema import Param
from ..tasks import TASKS_WITHOUT_REFERENCE
from . import Method, register
from ._common import MethodBuildError
from ._placement import PlacementError, block_regex, num_layers

PARAMS = (
    Param(
        "blocks",
        "int",
        2,
        min=1,
        max=200,
        label="Blocks to train",
        help="How many of the last transformer blocks (those nearest the output) train with the head.",
    ),
)


def build(model, params: dict, task: str, *, new_modules: Sequence[str] = (), total_steps: int | None = None):
    from ._torch_parts import freeze_all_but

    try:
        count = num_layers(model.config)
        if params["blocks"] > count:
            raise MethodBuildError(f"Freeze: the model has {count} blocks, fewer than the {params['blocks']} asked for")
        pattern = re.compile(block_regex(model.config.model_type, list(range(count - params["blocks"], count))))
    except PlacementError as exc:
        raise MethodBuildError(str(exc)) from exc
    freeze_all_but(model, lambda name: pattern.match(name), new_modules)
    return model


METHOD = register(
    Method(
        name="freeze",
        label="Freeze (last blocks)",
        family="selective",
        description="Trains only the last few blocks of the model and the head; a classic, simple reference.",
        paper="https://arxiv.org/abs/1411.1792",
        params=PARAMS,
        tasks=TASKS_WITHOUT_REFERENCE,
        recommended_learning_rate=1e-4,
        can_merge=False,
        build=build,
        acts_on=("attention", "ffn"),
        how="selects",
        saved_as="peftcore",
    )
)
