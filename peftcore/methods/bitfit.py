"""BitFit: train only the model's existing bias terms and the task head (Ben Zaken et al., 2022)."""

from __future__ import annotations

from collections.abc import Sequence

from ..tasks import TASKS_WITHOUT_REFERENCE
from . import Method, register
from ._common import MethodBuildError

_NO_BIAS = "{} models have no bias terms in their layers, so BitFit would train nothing but the task head"


def build(model, params: dict, task: str, *, new_modules: Sequence[str] = (), total_steps: int | None = None):
    from ._torch_parts import freeze_all_but

    heads = tuple(f"{name}." for name in new_modules)
    if not freeze_all_but(model, lambda n: n.endswith(".bias") and not n.startswith(heads), new_modules):
        kind = getattr(model.config, "model_type", "this")
        raise MethodBuildError(_NO_BIAS.format(repr(kind)) + "; choose LoRA, IA3 or RED instead")
    return model


METHOD = register(
    Method(
        name="bitfit",
        label="BitFit",
        family="selective",
        description="Trains only the small bias numbers already in the model (and the task head): tiny and "
        "surprisingly strong.",
        paper="https://arxiv.org/abs/2106.10199",
        params=(),
        tasks=TASKS_WITHOUT_REFERENCE,
        recommended_learning_rate=1e-2,
        can_merge=True,  # the trained biases simply replace the base ones
        build=build,
        acts_on=("attention", "ffn", "representation"),
        how="selects",
        refusals={kind: _NO_BIAS.format(repr(kind)) for kind in ("llama", "mistral", "gemma3_text", "t5")},
        saved_as="peftcore",
    )
)
