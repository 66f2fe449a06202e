"""(IA)^3: learn one scaling vector per adapted layer (Liu et al., 2022), through peft."""

from __future__ import annotations

from collections.abc import Sequence

from ..tasks import ALL_TASKS, peft_task_type
from . import Method, register
from ._common import MethodBuildError, apply_peft, module_names_param, modules_to_save, parse_module_names

PARAMS = (
    module_names_param(
        "target_modules",
        label="Target modules",
        help="Comma-separated names of the layers to rescale, e.g. 'key, value, output.dense'. Leave empty for "
        "the usual choice for this model.",
    ),
    module_names_param(
        "feedforward_modules",
        label="Feed-forward modules",
        help="Which of the target modules are feed-forward layers (their inputs are rescaled instead of their "
        "outputs). Leave empty for the usual choice for this model.",
    ),
)


def _default_feedforward(model_type: str) -> list[str]:
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING as mapping

    return list(mapping.get(model_type, []))


def build(model, params: dict, task: str, *, new_modules: Sequence[str] = (), total_steps: int | None = None):
    from peft import IA3Config

    targets = parse_module_names(params.get("target_modules"), "target_modules")
    feedforward = parse_module_names(params.get("feedforward_modules"), "feedforward_modules")
    if targets is not None:
        if feedforward is None:
            # peft requires feed-forward modules to be among the targets: keep the model's usual ones that are.
            model_type = getattr(model.config, "model_type", "")
            feedforward = [m for m in _default_feedforward(model_type) if m in targets]
        elif not set(feedforward) <= set(targets):
            extra = ", ".join(sorted(set(feedforward) - set(targets)))
            raise MethodBuildError(f"feedforward_modules must also be listed in target_modules (missing: {extra})")
    config = IA3Config(
        task_type=peft_task_type(task),
        target_modules=targets,
        feedforward_modules=feedforward,
        modules_to_save=modules_to_save(new_modules),
    )
    return apply_peft(model, config, "(IA)³")


METHOD = register(
    Method(
        name="ia3",
        label="(IA)³",
        family="additive",
        description="Learns one scaling factor per feature in a few layers; trains very few weights and is fast.",
        paper="https://arxiv.org/abs/2205.05638",
        params=PARAMS,
        tasks=ALL_TASKS,
        recommended_learning_rate=1e-2,  # 0.803 vs 0.774 dev accuracy at 3e-3 (docs/benchmarks.md)
        can_merge=True,
        build=build,
        acts_on=("attention", "ffn"),
        how="adds",
        quantized_base=True,
    )
)
