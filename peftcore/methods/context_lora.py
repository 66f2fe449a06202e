"""Context-PEFT for SFT: two LoRA adapters in every adapted layer, one for the prompt's tokens and one for the
answer's, each token routed to its group's (Shah et al., 2023; peftcore/token_groups.py). Saved in peftcore's
format (both adapters' weights), since plain peft would load the answer's adapter alone and route nothing."""

from __future__ import annotations

import copy

from . import Method, register
from .lora import METHOD as LORA
from .lora import PARAMS as LORA_PARAMS
from .lora import auto_alpha

# LoRA's settings that apply to both adapters alike: not the initialisations that rewrite the base weights
# (PiSSA, OLoRA: done twice they would subtract twice), nor DoRA's, KaSA's or BA-LoRA's extra parts.
KEPT = ("r", "lora_alpha", "lora_dropout", "use_rslora", "placement", "layers", "target_modules")
PARAMS = tuple(p for p in LORA_PARAMS if p.name in KEPT)


def build(model, params: dict, task: str, *, new_modules=(), total_steps=None):
    from ..token_groups import ANSWER, PROMPT, TokenRouter

    model = LORA.build(model, dict(params), task, new_modules=new_modules, total_steps=total_steps)
    model.add_adapter(PROMPT, copy.deepcopy(model.peft_config[ANSWER]))
    model.base_model.set_adapter([ANSWER, PROMPT])  # both active and trainable
    model.peftcore_router = TokenRouter(model)
    return model


METHOD = register(
    Method(
        name="context_lora",
        label="Context-PEFT (LoRA per token group)",
        family="reparameterised",
        description="Two LoRAs, one for the prompt's tokens and one for the answer's: each token is adapted by its "
        "own group's.",
        paper="https://arxiv.org/abs/2312.08900",
        params=PARAMS,
        tasks=("sft",),
        recommended_learning_rate=LORA.recommended_learning_rate,
        can_merge=False,  # two updates, chosen per token: no single weight holds both
        build=build,
        acts_on=("attention", "ffn"),
        how="reparameterises",
        auto=auto_alpha,
        saved_as="peftcore",
    )
)
