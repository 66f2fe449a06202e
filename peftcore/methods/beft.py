"""BEFT: train a new bias vector on each adapted linear layer, the weights untouched (bias-efficient fine-tuning),
through peft. Unlike BitFit it works on models built without biases (Llama, Gemma), since the biases are new."""

from __future__ import annotations

from ._catalogue import tuner


def _options(params: dict, model, total_steps) -> dict:
    return {}


METHOD = tuner(
    "beft",
    "BEFT",
    "BeftConfig",
    description="Adds one trained bias vector per adapted layer: BitFit for any model, even those without biases.",
    paper="https://huggingface.co/docs/peft/package_reference/beft",
    params=(),
    options=_options,
    learning_rate=1e-2,  # as BitFit: only bias vectors train
    family="additive",
    how="adds",
    linear_layers_only=True,
)
