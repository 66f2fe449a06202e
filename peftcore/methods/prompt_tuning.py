"""Prompt tuning: learn a few "virtual token" embeddings put in front of every input (Lester et al., 2021)."""

from __future__ import annotations

from ..tasks import ALL_TASKS
from . import T5_NO_PROMPTS, Method, register, virtual_tokens
from ._common import peft_builder

PARAMS = (virtual_tokens(),)


def _options(params: dict, model, total_steps) -> dict:
    return dict(num_virtual_tokens=params["num_virtual_tokens"])


METHOD = register(
    Method(
        name="prompt_tuning",
        label="Prompt tuning",
        family="prompt",
        description="Learns a short invisible prompt placed before every text; the model itself is untouched.",
        paper="https://arxiv.org/abs/2104.08691",
        params=PARAMS,
        tasks=ALL_TASKS,
        recommended_learning_rate=3e-2,
        can_merge=False,
        build=peft_builder("PromptTuningConfig", "Prompt tuning", _options, targets=False),
        acts_on=("input",),
        how="prompts",
        refusals={"t5:text-classification": T5_NO_PROMPTS.format("Prompt tuning")},
    )
)
