"""P-tuning: virtual token embeddings produced by a small trained encoder (Liu et al., 2021), through peft."""

from __future__ import annotations

from ..schema import Param
from ..tasks import ALL_TASKS
from . import T5_NO_PROMPTS, Method, register, virtual_tokens
from ._common import peft_builder

PARAMS = (
    virtual_tokens(),
    Param(
        "encoder_hidden_size",
        "int",
        128,
        min=8,
        max=4096,
        label="Encoder size",
        help="The width of the small network that produces the virtual tokens.",
    ),
)


def _options(params: dict, model, total_steps) -> dict:
    return dict(num_virtual_tokens=params["num_virtual_tokens"], encoder_hidden_size=params["encoder_hidden_size"])


METHOD = register(
    Method(
        name="p_tuning",
        label="P-tuning",
        family="prompt",
        description="Like prompt tuning, but a small network writes the invisible prompt, which trains more steadily.",
        paper="https://arxiv.org/abs/2103.10385",
        params=PARAMS,
        tasks=ALL_TASKS,
        recommended_learning_rate=3e-2,  # bench/sweep.py on SST-2: 1e-3, 3e-3 and 1e-2 stay on the majority class
        can_merge=False,
        build=peft_builder("PromptEncoderConfig", "P-tuning", _options, targets=False),
        acts_on=("input",),
        how="prompts",
        refusals={"t5:text-classification": T5_NO_PROMPTS.format("P-tuning")},
    )
)
