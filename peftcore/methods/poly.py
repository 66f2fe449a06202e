"""Poly (Polytropon, Ponti et al., 2023) and Multi-Head Routing (MHR, Caccia et al., 2023), through peft: each
layer holds a small inventory of LoRA "skills" and a learned router mixes them (trained with a relaxed Bernoulli
draw, evaluated with its sigmoid). A job trains one task, so there is one routing per layer: the skills are a
LoRA whose rank is split into parts that the router weighs and, while training, randomly drops. With a group
column, each group is a task of its own (task_routing.py): the skills are shared, each group learns its own mix.

peft's router needs a task id with every forward; the built (and reloaded) model takes 0 when none is given (a
group's predictor: that group's id). Plain peft: pass task_ids (a long tensor, one id per row)."""

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


def single_task(model, task: int = 0) -> None:
    """Make every router take `task` when no task id is given (0: the one task of a plain job's adapter).

    While training, a forward without task ids is activation checkpointing recomputing a block in the backward
    pass, after peft's hooks that handed the ids over are gone: it takes the ids of the forward it recomputes (the
    router's last ones), or the gradients would be those of task `task` for every row."""
    import torch
    from peft.tuners.poly.router import Router

    for module in model.modules():
        if isinstance(module, Router):
            forward = getattr(module, "_routed_forward", module.forward)  # set again: the first forward, not ours
            module._routed_forward = forward

            def with_task(task_ids, input_ids, forward=forward, router=module):
                last = getattr(router, "_last_task_ids", None)
                if task_ids is not None:
                    router._last_task_ids = task_ids if router.training else None
                elif router.training and last is not None and len(last) == input_ids.shape[0]:
                    task_ids = last
                else:
                    task_ids = torch.full((input_ids.shape[0],), task, dtype=torch.long, device=input_ids.device)
                return forward(task_ids, input_ids)

            module.forward = with_task


def expand_tasks(model, tasks: int) -> None:
    """One task per group: every router gets a row of logits per task, each a copy of the first (so every group
    starts from the same even mix and learns its own), and the config says so, so the saved adapter reloads so."""
    import torch
    from peft.tuners.poly.router import Router

    for module in model.modules():
        if isinstance(module, Router):
            module.module_logits = torch.nn.Parameter(module.module_logits.detach()[:1].repeat(tasks, 1))
            module.n_tasks = tasks
    for config in model.peft_config.values():
        config.n_tasks = tasks


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
    expand_tasks=expand_tasks,
)
