"""S2FT, structured sparse fine-tuning (Yang et al., 2024): in every chosen block a seeded random choice of
attention heads and feed-forward channels trains, in place. For a selected head the weights that read its
output (its columns of the attention output projection) train; for a selected channel, its column of the FFN
down projection. Everything else is frozen, and only the changed columns (with their indices) are saved.
Trainable per block: hidden x (heads x head size + channels) (plus the task head)."""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

from ..schema import Param
from ..tasks import TASKS_WITHOUT_REFERENCE
from . import Method, register
from ._common import MethodBuildError
from ._placement import PlacementError, output_regex, placement_params

PARAMS = (
    Param(
        "head_fraction",
        "float",
        0.1,
        min=0.0,
        max=1.0,
        label="Share of attention heads",
        help="Share of each block's attention heads that train (at least one when above 0; 0 trains none).",
    ),
    Param(
        "channel_fraction",
        "float",
        0.02,
        min=0.0,
        max=1.0,
        label="Share of FFN channels",
        help="Share of each block's feed-forward channels that train (at least one when above 0; 0 trains none).",
    ),
    Param(
        "seed",
        "int",
        0,
        min=0,
        max=2**31 - 1,
        label="Selection seed",
        help="Which heads and channels are chosen; the same seed chooses the same ones again.",
    ),
    placement_params(default="both")[1],  # layers
)


def how_many(fraction: float, available: int) -> int:
    return 0 if fraction <= 0 else min(available, max(1, round(fraction * available)))


def _pick(seed: int, name: str, available: int, count: int) -> list[int]:
    return sorted(random.Random(f"s2ft:{seed}:{name}").sample(range(available), count))


def build(model, params: dict, task: str, *, new_modules: Sequence[str] = (), total_steps: int | None = None):
    from ._torch_parts import S2FT_DELTA, _input_size, add_s2ft, freeze_all_but

    if params["head_fraction"] <= 0 and params["channel_fraction"] <= 0:
        raise MethodBuildError("S2FT: set a share of attention heads or of FFN channels above 0")
    try:
        attention = re.compile(output_regex(model.config, "attention", params["layers"]))
        ffn = re.compile(output_regex(model.config, "ffn", params["layers"]))
    except PlacementError as exc:
        raise MethodBuildError(str(exc)) from exc
    heads = getattr(model.config, "num_attention_heads", None)
    edited = 0
    for name, module in list(model.named_modules()):
        if params["head_fraction"] > 0 and attention.fullmatch(name):
            width = _input_size(module)
            if not heads or width % heads:
                raise MethodBuildError(f"S2FT cannot split {name} ({width} inputs) into {heads} attention heads")
            size = width // heads
            chosen = _pick(params["seed"], name, heads, how_many(params["head_fraction"], heads))
            add_s2ft(module, [h * size + j for h in chosen for j in range(size)])
            edited += 1
        elif params["channel_fraction"] > 0 and ffn.fullmatch(name):
            width = _input_size(module)
            add_s2ft(module, _pick(params["seed"], name, width, how_many(params["channel_fraction"], width)))
            edited += 1
    if not edited:
        raise MethodBuildError("S2FT found no attention or feed-forward projections to train in this model")
    freeze_all_but(model, lambda n: n.endswith(f".{S2FT_DELTA}"), new_modules)
    return model


METHOD = register(
    Method(
        name="s2ft",
        label="S2FT (structured sparse)",
        family="selective",
        description="Trains a few randomly chosen attention heads and feed-forward channels of every block and "
        "leaves the rest frozen; can be merged into the model afterwards.",
        paper="https://arxiv.org/abs/2412.06289",
        params=PARAMS,
        tasks=TASKS_WITHOUT_REFERENCE,
        recommended_learning_rate=1e-3,
        can_merge=True,  # the trained columns are written back into the base weights (merge_s2ft)
        build=build,
        acts_on=("attention", "ffn"),
        how="selects",
        saved_as="peftcore",
    )
)
