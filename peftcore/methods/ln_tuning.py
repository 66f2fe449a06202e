"""LN-tuning: train only the layer-normalisation weights (Qi et al., 2022), through peft."""

from __future__ import annotations

from ..tasks import ALL_TASKS
from . import Method, register
from ._common import MethodBuildError, parse_module_names, peft_builder, targeting_params
from ._placement import PlacementError, norm_regex


def _options(params: dict, model, total_steps) -> dict:
    explicit = parse_module_names(params.get("target_modules"), "target_modules")
    if explicit is not None:
        return dict(target_modules=explicit)
    try:  # peft has no default norm names for BERT-style models, so they always come from placement
        return dict(target_modules=norm_regex(model.config, params["placement"], params["layers"]))
    except PlacementError as exc:
        raise MethodBuildError(str(exc)) from exc


METHOD = register(
    Method(
        name="ln_tuning",
        label="LN-tuning",
        family="selective",
        description="Trains only the normalisation layers' scale and shift: tiny, fast, and a strong baseline.",
        paper="https://arxiv.org/abs/2211.08682",
        params=targeting_params("both the attention and feed-forward norms of each block"),
        tasks=ALL_TASKS,
        recommended_learning_rate=5e-3,
        can_merge=True,
        build=peft_builder("LNTuningConfig", "LN-tuning", _options),
        acts_on=("attention", "ffn"),
        how="selects",
    )
)
