"""Activated LoRA (aLoRA, Greenewald et al. 2025, arxiv.org/abs/2504.12397; peft's `alora_invocation_tokens`):
the adapter switches on at an invocation sequence of tokens and stays off before it, so the base model reads the
prompt and its key-value cache can be shared with the base model and other aLoRAs.

The invocation sequence is the one every training prompt ends with (the template's answer marker, such as
"<end_of_turn>\\n<start_of_turn>model\\n"): found in the rows before the first step, so nobody types token ids.
peft looks for its last occurrence in each sequence, so an answer that repeats the marker starts the adapter
late in training; the longest common ending keeps that rare.
"""

from __future__ import annotations

from collections.abc import Sequence

from .lora_ga import BASE_MOVING_INITS

IGNORE_INDEX = -100
MAX_INVOCATION = 32  # tokens; a template's answer marker is a handful
PLACEHOLDER = [0]  # what the adapter is built with until the rows have been read (the layers are the same)


class InvocationError(ValueError):
    """The training prompts share no ending for the adapter to switch on at."""


def activated(method_params: dict) -> bool:
    return bool(method_params.get("activated"))


def activation_problem(method, method_params: dict, task: str) -> str | None:
    """Why aLoRA cannot run with this task and these LoRA settings, or None."""
    if method.name != "lora" or not activated(method_params):
        return None
    if task != "sft":
        return (
            "aLoRA switches the adapter on where the answer starts in a causal language model's prompt: it is for "
            "SFT; turn it off for this task"
        )
    if method_params.get("use_dora") or method_params.get("use_kasa"):
        return "aLoRA does not combine with DoRA or KaSA (each changes how the update is applied); turn one off"
    if method_params.get("init") in BASE_MOVING_INITS:
        # they move part of each weight into the adapter: with the adapter off over the prompt, the prompt would
        # be read by what is left of the base model
        return (
            "aLoRA leaves the prompt to the base model, and the PiSSA, OLoRA, LoRA-GA and CorDA starts take part of the "
            "base weights into the adapter; choose the default or EVA start"
        )
    return None


def invocation_tokens(features: Sequence[dict]) -> list[int]:
    """The longest run of token ids that ends every row's prompt (the ids before its first answer token), at
    most MAX_INVOCATION. Rows whose answer was cut away entirely are skipped."""
    common: list[int] | None = None
    for feature in features:
        labels = feature["labels"]
        first = next((i for i, label in enumerate(labels) if label != IGNORE_INDEX), None)
        if first is None:
            continue
        prompt = feature["input_ids"][:first][-MAX_INVOCATION:]
        if common is None:
            common = prompt
            continue
        shared = 0
        while shared < min(len(common), len(prompt)) and common[-1 - shared] == prompt[-1 - shared]:
            shared += 1
        common = common[len(common) - shared :]
        if not common:
            break
    if not common:
        raise InvocationError(
            "aLoRA needs every prompt to end with the same tokens, where the answer starts; these rows' prompts "
            "share no ending. Choose a template that marks the answer (alpaca, chatml, gemma or the model's own)"
        )
    return list(common)


def set_invocation(model, features: Sequence[dict]) -> list[int]:
    """Point every aLoRA adapter of the model at the rows' invocation sequence (peft reads it at each forward,
    and saves it in adapter_config.json)."""
    tokens = invocation_tokens(features)
    for config in model.peft_config.values():
        if getattr(config, "alora_invocation_tokens", None) is not None:
            config.alora_invocation_tokens = tokens
    return tokens
