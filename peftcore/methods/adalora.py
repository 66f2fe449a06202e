"""AdaLoRA: LoRA whose rank budget is moved during training to the weights that need it most (Zhang et al.,
2023), through peft. Needs the run's total step count and a call after every optimizer step."""

from __future__ import annotations

from ..schema import Param
from ..tasks import ALL_TASKS
from . import Method, register
from ._common import peft_builder, targeting_params

PARAMS = (
    Param(
        "init_r",
        "int",
        12,
        min=1,
        max=256,
        label="Starting rank",
        help="The rank every adapted weight starts with, before the budget is redistributed.",
    ),
    Param(
        "target_r",
        "int",
        8,
        min=1,
        max=256,
        label="Average final rank",
        help="The average rank left after redistribution; must not exceed the starting rank.",
    ),
    Param("lora_alpha", "int", 16, min=1, max=1024, label="Alpha", help="Scales the learned update, as in LoRA."),
    Param(
        "lora_dropout",
        "float",
        0.1,
        min=0.0,
        max=0.9,
        label="Dropout",
        help="Randomly switches off part of the update while training, which reduces over-fitting.",
    ),
    Param(
        "warmup_share",
        "float",
        0.1,
        min=0.0,
        max=0.8,
        label="Share before reallocating",
        help="The share of training steps trained at the starting rank before the budget starts to move.",
    ),
    Param(
        "final_share",
        "float",
        0.2,
        min=0.0,
        max=0.8,
        label="Share after reallocating",
        help="The share of training steps at the end during which the ranks stay fixed.",
    ),
    *targeting_params("peft's usual layers for this model (query and value in BERT)"),
)

_PLACEHOLDER_STEPS = 1000  # counting trainable weights needs no real schedule


def _options(params: dict, model, total_steps) -> dict:
    from ._common import MethodBuildError

    if params["target_r"] > params["init_r"]:
        raise MethodBuildError("AdaLoRA: the average final rank must not exceed the starting rank")
    steps = total_steps or _PLACEHOLDER_STEPS
    tinit, tfinal = int(params["warmup_share"] * steps), int(params["final_share"] * steps)
    if tinit >= steps - tfinal:
        raise MethodBuildError(
            "AdaLoRA: the shares before and after reallocating leave no steps to reallocate in; lower them"
        )
    return dict(
        init_r=params["init_r"],
        target_r=params["target_r"],
        lora_alpha=params["lora_alpha"],
        lora_dropout=params["lora_dropout"],
        tinit=tinit,
        tfinal=tfinal,
        total_step=steps,
    )


def on_step(model, step: int) -> None:
    # Scores each rank from this step's gradients and prunes the budget; must run before the gradients are reset.
    model.base_model.update_and_allocate(step)


METHOD = register(
    Method(
        name="adalora",
        label="AdaLoRA",
        family="reparameterised",
        description="Like LoRA, but moves its budget during training to the weights that matter most.",
        paper="https://arxiv.org/abs/2303.10512",
        params=PARAMS,
        tasks=ALL_TASKS,
        recommended_learning_rate=1e-2,  # bench/sweep.py on SST-2: better than 1e-3 and 3e-3 (docs/benchmarks.md)
        can_merge=True,
        build=peft_builder(
            "AdaLoraConfig", "AdaLoRA", _options, "TRANSFORMERS_MODELS_TO_ADALORA_TARGET_MODULES_MAPPING"
        ),
        acts_on=("attention",),
        how="reparameterises",
        on_step=on_step,
        quantized_base=True,
    )
)
