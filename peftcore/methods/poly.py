"""Poly (Polytropon, Ponti et al., 2023) and Multi-Head Routing (MHR, Caccia et al., 2023), through peft: each
layer holds a small inventory of LoRA "skills" and a learned router mixes them (trained with a relaxed Bernoulli
draw, evaluated with its sigmoid). The studio trains one task per job, so there is one routing per layer: the
skills are a LoRA whose rank is split into parts that the router weighs and, while training, randomly drops.

peft's router needs a task id with every forward; with one task it is always 0, so the built (and reloaded) model
takes 0 when none is given. Plain peft: pass task_ids=torch.zeros(batch, dtype=torch.long)."""

from __future__ import annotations

from ..schema import Param
from ._catalogue import rank, shared_divisor, tuner
from ._common import MethodBuildError, peft_builder

PARAMS = (
    # The defaults keep LoRA's default budget: 4 skills of rank 2 hold as many weights as one rank-8 LoRA
    rank(2, help="The rank of each skill (a LoRA update); the layer's update has up to skills x rank."),
    Param(
        "n_skills",
        "int",
        4,
        min=1,
        max=64,
        label="Skills",
        help="How many LoRA updates each layer holds for the router to mix.",
    ),
    Param(
        "n_splits",
        "int",
        1,
        min=1,
        max=64,
        label="Heads",
        help="Above 1: Multi-Head Routing, the layer's input and output split into this many parts, each routed on "
        "its own. It must divide every adapted layer's sizes.",
    ),
)


def _options(params: dict, model, total_steps) -> dict:
    return dict(r=params["r"], n_skills=params["n_skills"], n_splits=params["n_splits"], n_tasks=1)


def single_task(model) -> None:
    """Make every router take task 0 when no task id is given (one task per adapter)."""
    import torch
    from peft.tuners.poly.router import Router

    for module in model.modules():
        if isinstance(module, Router):
            forward = module.forward

            def with_task(task_ids, input_ids, forward=forward):
                if task_ids is None:
                    task_ids = torch.zeros(input_ids.shape[0], dtype=torch.long, device=input_ids.device)
                return forward(task_ids, input_ids)

            module.forward = with_task


_peft_build = peft_builder("PolyConfig", "Poly", _options)


def _build(model, params: dict, task: str, **kwargs):
    splits = params["n_splits"]
    if splits > 1 and shared_divisor(model, params, splits, "Poly") != splits:
        raise MethodBuildError(
            f"Poly: {splits} heads do not divide the sizes of every adapted layer; choose a divisor of the model's "
            "hidden size (for example 2, 4 or 8)"
        )
    built = _peft_build(model, params, task, **kwargs)
    single_task(built)
    return built


METHOD = tuner(
    "poly",
    "Poly",
    "PolyConfig",
    description="A few small LoRA skills per layer, mixed by a learned router (Multi-Head Routing with heads > 1).",
    paper="https://arxiv.org/abs/2202.13914",
    params=PARAMS,
    options=_options,
    learning_rate=1e-3,
    linear_layers_only=True,
    can_merge=False,
    build=_build,
)
