"""Full fine-tuning: every weight trains. The reference point for quality, memory and speed."""

from __future__ import annotations

from collections.abc import Sequence

from ..tasks import TASKS_WITHOUT_REFERENCE
from . import Method, register


def build(model, params: dict, task: str, *, new_modules: Sequence[str] = (), total_steps: int | None = None):
    model.requires_grad_(True)
    return model


METHOD = register(
    Method(
        name="full",
        label="Full fine-tuning",
        family="selective",
        description="Trains every weight of the model: the reference for quality, but the largest and slowest.",
        paper="https://arxiv.org/abs/1810.04805",
        params=(),
        tasks=TASKS_WITHOUT_REFERENCE,
        recommended_learning_rate=5e-5,
        can_merge=False,  # it is the whole model, saved as one
        build=build,
        acts_on=("input", "attention", "ffn", "representation", "output"),
        how="selects",
        saved_as="full",
    )
)
