"""RoAd: rotate pairs of each layer's output features by learned 2-D rotations (Liao et al., 2024), through peft."""

from __future__ import annotations

from ..schema import Param
from ._catalogue import shared_divisor, tuner

PARAMS = (
    Param(
        "variant",
        "choice",
        "road_1",
        choices=("road_1", "road_2", "road_4"),
        label="Variant",
        help="road_1 shares one angle and scale per feature pair; road_2 and road_4 learn two or four numbers per "
        "pair: more trained weights, a little more expressive.",
    ),
    Param(
        "group_size",
        "int",
        None,
        min=2,
        max=4096,
        optional=True,
        label="Group size",
        help="How many output features form one rotation group; must divide every adapted layer's size. Leave "
        "empty for the largest even size up to 64 that does.",
    ),
)


def _options(params: dict, model, total_steps) -> dict:
    group = params["group_size"] or shared_divisor(model, params, 64, "RoAd")
    return dict(variant=params["variant"], group_size=group)


METHOD = tuner(
    "road",
    "RoAd",
    "RoadConfig",
    description="Turns pairs of each layer's outputs by small learned rotations: very few weights, mergeable.",
    paper="https://arxiv.org/abs/2409.00119",
    params=PARAMS,
    options=_options,
    learning_rate=3e-3,
    linear_layers_only=True,
)
