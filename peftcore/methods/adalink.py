"""AdaLink (Wang et al., 2023): a non-intrusive adapter on the input embeddings only. Each token embedding x
becomes x + U(D x), with D (down, rank x hidden) and U (up, hidden x rank, initialised to zero so training
starts from the base model); every transformer block stays untouched, which keeps serving simple.
Trainable: 2 x hidden x rank (plus the task head)."""

from __future__ import annotations

from collections.abc import Sequence

from ..schema import Param
from ..tasks import TASKS_WITHOUT_REFERENCE
from . import Method, register
from ._common import MethodBuildError

PARAMS = (
    Param(
        "rank",
        "int",
        16,
        min=1,
        max=1024,
        label="Rank",
        help="Width of the low-rank adapter on the input embeddings. The paper finds results stable across "
        "ranks; higher ranks train more weights (2 x hidden size x rank).",
    ),
)


def build(model, params: dict, task: str, *, new_modules: Sequence[str] = (), total_steps: int | None = None):
    from ._torch_parts import ADALINK, add_adalink, freeze_all_but

    embedding = model.get_input_embeddings()
    if embedding is None:
        raise MethodBuildError("AdaLink found no input embeddings in this model")
    size = getattr(embedding, "embedding_dim", None)
    if size is None:
        raise MethodBuildError(f"AdaLink cannot adapt input embeddings of type {type(embedding).__name__}")
    if params["rank"] > size:
        raise MethodBuildError(f"AdaLink: rank {params['rank']} is larger than the embedding size {size}")
    add_adalink(model, params["rank"])
    freeze_all_but(model, lambda name: f".{ADALINK}." in f".{name}", new_modules)
    return model


METHOD = register(
    Method(
        name="adalink",
        label="AdaLink",
        family="additive",
        description="Learns a small correction to the word embeddings before they enter the model; the model's "
        "layers stay exactly as they were.",
        paper="https://arxiv.org/abs/2310.12100",
        params=PARAMS,
        tasks=TASKS_WITHOUT_REFERENCE,
        recommended_learning_rate=1e-2,  # bench/sweep.py on SST-2: better than 1e-3 and 3e-3 (docs/benchmarks.md)
        can_merge=False,  # x + U D x is a per-token linear map on the embedding output, not foldable into a lookup
        build=build,
        acts_on=("input",),
        how="adds",
        saved_as="peftcore",
    )
)
