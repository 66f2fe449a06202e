"""Prefix tuning: learn key/value "prefixes" that every attention layer attends to (Li & Liang, 2021)."""

from __future__ import annotations

from ..schema import Param
from ..tasks import ALL_TASKS
from . import KNOWN_ARCHITECTURES, T5_NO_PROMPTS, Method, register
from ._common import peft_builder

PARAMS = (
    Param(
        "num_virtual_tokens",
        "int",
        20,
        min=1,
        max=256,
        label="Prefix length",
        help="How many learned positions every attention layer can look at.",
    ),
    Param(
        "prefix_projection",
        "bool",
        False,
        label="Reparameterise",
        help="Produce the prefixes through a small network, which can make training steadier but trains more weights.",
    ),
)


def _options(params: dict, model, total_steps) -> dict:
    return dict(num_virtual_tokens=params["num_virtual_tokens"], prefix_projection=params["prefix_projection"])


METHOD = register(
    Method(
        name="prefix_tuning",
        label="Prefix tuning",
        family="prompt",
        description="Learns extra keys and values that every attention layer reads, steering the model without "
        "changing it.",
        paper="https://arxiv.org/abs/2101.00190",
        params=PARAMS,
        tasks=ALL_TASKS,
        recommended_learning_rate=1e-2,
        can_merge=False,
        build=peft_builder("PrefixTuningConfig", "Prefix tuning", _options, targets=False),
        acts_on=("attention",),
        how="prompts",
        architectures=tuple(a for a in KNOWN_ARCHITECTURES if a != "distilbert"),
        refusals={
            "distilbert": "DistilBERT's attention takes no past keys and values, which prefix tuning adds",
            "t5:text-classification": T5_NO_PROMPTS.format("Prefix tuning"),
        },
    )
)
