"""QLoRA: the frozen base model loaded in 4-bit NF4 through bitsandbytes, the adapter trained on top in higher
precision (Dettmers et al., 2023). Only methods with a bitsandbytes layer in peft can train on it, and only a
CUDA GPU runs bitsandbytes' 4-bit kernels: both are refused with what to change, before any loading."""

from __future__ import annotations

from .errors import BAD_PARAMS, TrainingError

FOUR_BIT = "4bit"


def quantize_problem(method, params: dict) -> str | None:
    """Why this method cannot train on a 4-bit base, or None."""
    if params.get("quantize") != FOUR_BIT or method.quantized_base:
        return None
    from .methods import all_methods

    able = ", ".join(m.label for m in all_methods() if m.quantized_base)
    return (
        f"4-bit loading (QLoRA) works with {able}: {method.label} has no 4-bit layer in peft; choose one of those "
        "or turn 4-bit loading off"
    )


def quantization_config(device, compute_dtype):
    """transformers' BitsAndBytesConfig for NF4 with double quantisation (the QLoRA paper's), or a bad_params
    error saying what the worker lacks."""
    if device.type != "cuda":
        raise TrainingError(
            BAD_PARAMS,
            f"4-bit loading (QLoRA) needs a CUDA GPU and this worker trains on the {device.type.upper()}: run the "
            "job on a GPU worker or turn 4-bit loading off",
        )
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as exc:
        raise TrainingError(
            BAD_PARAMS,
            "4-bit loading (QLoRA) needs the bitsandbytes package on the worker (pip install bitsandbytes); "
            "or turn 4-bit loading off",
        ) from exc
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
    )


def prepare(model, gradient_checkpointing: bool):
    """peft's preparation of a k-bit model: norms in fp32, input gradients on (so adapters get gradients)."""
    from peft import prepare_model_for_kbit_training

    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
