"""What the newer peft tuners share (peft 0.21: RoAd, MiSS, SHiRA, C3A, ...): each registry module gives its
parameters, how they map to the peft config and its measured or published learning rate; this fills in the rest
the same way for all of them. They adapt every linear layer of each block by default (placement 'both'), the
placement that measured best for LoRA (docs/benchmarks.md), since peft's own per-model lists do not cover
every architecture the studio knows."""

from __future__ import annotations

import math
import re
from collections.abc import Callable

from ..schema import Param
from ..tasks import ALL_TASKS
from . import Method, linear_only, register
from ._common import MethodBuildError, peft_builder, resolve_targets, targeting_params

PLACEMENT = targeting_params(default="both")


def dropout(name: str) -> Param:
    """The tuner's dropout on the update's input (peft names it per tuner)."""
    return Param(
        name,
        "float",
        0.0,
        min=0.0,
        max=0.9,
        label="Dropout",
        help="Randomly switches off part of the input to the update while training.",
    )


def rank(default: int = 8, help: str = "The rank of each layer's update, as in LoRA.", **more) -> Param:
    return Param("r", "int", default, **{"min": 1, "max": 256, "label": "Rank", "help": help, **more})


def tuner(
    name: str,
    label: str,
    config: str,
    *,
    description: str,
    paper: str,
    params: tuple,
    options: Callable[[dict, object, int | None], dict],
    learning_rate: float,
    family: str = "reparameterised",
    how: str = "reparameterises",
    linear_layers_only: bool = False,
    can_merge: bool = True,
    needs_weight_values: bool = False,
    refusals: dict | None = None,
    build: Callable | None = None,
    expand_tasks: Callable | None = None,
) -> Method:
    """Register one peft tuner. linear_layers_only: peft wraps only torch.nn.Linear (GPT-2's Conv1D refused with
    the reason); needs_weight_values: building it reads the weights' values (counted on real weights, not the meta
    device); build: instead of the plain peft build (for a tuner that needs a check or a fix-up around it)."""
    return register(
        Method(
            name=name,
            label=label,
            family=family,
            description=description,
            paper=paper,
            params=(*params, *PLACEMENT),
            tasks=ALL_TASKS,
            recommended_learning_rate=learning_rate,
            can_merge=can_merge,
            build=build or peft_builder(config, label, options),
            acts_on=("attention", "ffn"),
            how=how,
            refusals={**(linear_only(label) if linear_layers_only else {}), **(refusals or {})},
            needs_weight_values=needs_weight_values,
            expand_tasks=expand_tasks,
        )
    )


def shared_divisor(model, params: dict, cap: int, label: str) -> int:
    """The largest size <= cap that divides both sizes of every layer the tuner will adapt (C3A's blocks, VB-LoRA's
    vectors and RoAd's groups must tile each weight exactly)."""
    target = resolve_targets(model, params, None)
    sizes = [  # weight.shape: linear layers and GPT-2's Conv1D (which stores its weight transposed) alike
        size
        for key, module in model.named_modules()
        if _targeted(key, target) and getattr(getattr(module, "weight", None), "ndim", 0) == 2
        for size in module.weight.shape
    ]
    if not sizes:
        raise MethodBuildError(f"{label}: no linear layer matches the chosen placement")
    common = math.gcd(*sizes)
    return max(d for d in range(1, min(cap, common) + 1) if common % d == 0)


def _targeted(key: str, target) -> bool:
    if isinstance(target, str):
        return re.fullmatch(target, key) is not None
    return any(key == name or key.endswith(f".{name}") for name in target or ())
