"""Where a run trains and in what precision: CUDA, then Apple's MPS, then the CPU; bf16 autocast where the device
has fast bf16 (`precision` "auto"), full precision elsewhere.

bf16 keeps fp32's range, so it needs no loss scaling and resumes exactly from a checkpoint; fp16 would need a
gradient scaler whose state every checkpoint carries, so GPUs without bf16 (before Ampere) train in fp32. The
weights stay fp32 either way (autocast computes matmuls in bf16 and keeps the master weights exact).
"""

from __future__ import annotations

from contextlib import nullcontext

from .errors import BAD_PARAMS, TrainingError

AUTO, FP32, BF16 = "auto", "fp32", "bf16"
PRECISIONS = (AUTO, FP32, BF16)


def pick_device():
    import torch

    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_precision(device, precision: str) -> tuple[str, str]:
    """(fp32 or bf16, why) for the device. "auto" takes bf16 only on a CUDA GPU that runs it natively; asking
    for bf16 where the device cannot is a bad_params error, not a silent fallback."""
    import torch

    native = device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False)
    if precision == AUTO:
        if native:
            return BF16, f"{torch.cuda.get_device_name(device)} computes in bf16 natively: about twice as fast"
        return FP32, f"full precision: the {device.type.upper()} has no native bf16"
    if precision == BF16 and device.type == "cuda" and not native:
        raise TrainingError(
            BAD_PARAMS,
            f"precision bf16: {torch.cuda.get_device_name(device)} has no native bf16 (it needs an Ampere GPU or "
            "newer); choose auto or fp32",
        )
    if precision == BF16 and device.type == "mps":
        raise TrainingError(BAD_PARAMS, "precision bf16 is not supported on Apple MPS; choose auto or fp32")
    return precision, "as set"


def autocast(device, precision: str):
    """The context the model's forward passes run in."""
    import torch

    if precision != BF16:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
