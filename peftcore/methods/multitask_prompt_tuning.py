"""Multitask prompt tuning (MPT, Wang et al., 2023): the prompt is a shared prompt times a low-rank task matrix,
P = P* ∘ (u·v). A job trains one task, so there is one task matrix, started at all ones (its first rank; the
others start at zero; with a group column each group is a task with a matrix of its own, each started so:
task_routing.py): the prompt starts as plain prompt tuning's and the rank-r matrix learns a
per-position, per-dimension scaling on top (peft's random start, u and v ~ N(0, 0.02), would start the prompt near
zero, which is meant for a prompt that a source training has already shaped).

peft's MPT needs a task id with every forward; the built (and reloaded) prompt encoder takes 0 when none is given
(a group's predictor: that group's id). Plain peft: pass task_ids (a long tensor, one id per row).

Not for sequence-to-sequence writing: peft 0.21's MPT forward for encoder-decoder models drops given decoder
inputs (it only builds its own from the labels), so evaluation and generation would fail."""

from __future__ import annotations

from ..schema import Param
from ..tasks import ALL_TASKS, SEQ2SEQ
from . import T5_NO_PROMPTS, Method, register, virtual_tokens
from ._common import peft_builder

ADAPTER = "default"

PARAMS = (
    virtual_tokens(),
    Param(
        "num_ranks",
        "int",
        1,
        min=1,
        max=64,
        label="Task matrix rank",
        help="The rank of the task matrix that scales the shared prompt (the paper's is 1).",
    ),
)


def _options(params: dict, model, total_steps) -> dict:
    return dict(num_virtual_tokens=params["num_virtual_tokens"], num_ranks=params["num_ranks"], num_tasks=1)


def single_task(model, task: int = 0) -> None:
    """Make the prompt encoder take `task` when no task id is given (0: the one task of a plain job's adapter)."""
    import torch

    encoder = model.prompt_encoder[ADAPTER]
    forward = getattr(encoder, "_routed_forward", encoder.forward)  # set again: the first forward, not ours
    encoder._routed_forward = forward

    def with_task(indices, task_ids=None):
        if task_ids is None:
            task_ids = torch.full((indices.shape[0],), task, dtype=torch.long, device=indices.device)
        return forward(indices, task_ids)

    encoder.forward = with_task


def expand_tasks(model, tasks: int) -> None:
    """One task per group: a task matrix per task, each a copy of the first (the shared prompt as it starts), and
    the config says so, so the saved adapter reloads so."""
    import torch

    encoder = model.prompt_encoder[ADAPTER]
    for name in ("prefix_task_cols", "prefix_task_rows"):
        first = getattr(encoder, name).detach()[:1]
        setattr(encoder, name, torch.nn.Parameter(first.repeat(tasks, *([1] * (first.dim() - 1)))))
    encoder.num_tasks = tasks
    model.peft_config[ADAPTER].num_tasks = tasks


def _build(model, params: dict, task: str, **kwargs):
    import torch

    built = peft_builder("MultitaskPromptTuningConfig", "Multitask prompt tuning", _options, targets=False)(
        model, params, task, **kwargs
    )
    encoder = built.prompt_encoder[ADAPTER]
    with torch.no_grad():
        # u·v = 1 everywhere from the first rank alone; the others start as peft's random u and a zero v, so they add
        # nothing yet and, unlike equal ranks (which would get equal gradients forever), each can learn its own part
        encoder.prefix_task_cols[:, :, 0] = 1.0
        encoder.prefix_task_rows[:, 0, :] = 1.0
        encoder.prefix_task_rows[:, 1:, :] = 0.0
    single_task(built)
    return built


METHOD = register(
    Method(
        name="multitask_prompt_tuning",
        label="Multitask prompt tuning",
        family="prompt",
        description="Prompt tuning whose prompt is a shared prompt scaled by a small low-rank task matrix.",
        paper="https://arxiv.org/abs/2303.02861",
        params=PARAMS,
        tasks=tuple(task for task in ALL_TASKS if task != SEQ2SEQ),
        recommended_learning_rate=3e-2,  # prompt tuning's
        can_merge=False,
        build=_build,
        expand_tasks=expand_tasks,
        acts_on=("input",),
        how="prompts",
        refusals={"t5:text-classification": T5_NO_PROMPTS.format("Multitask prompt tuning")},
    )
)
