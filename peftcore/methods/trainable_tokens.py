"""Trainable Tokens: train the input-embedding rows of chosen tokens and nothing else of the model (peft's
TrainableTokens). Which tokens: the ones the training rows use most, counted before the first step, so the
weights that train are the ones the data reads. Writing tasks only: peft's config has no modules_to_save, so a
classifier's new head would neither train nor be saved."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from ..schema import Param
from ..tasks import GENERATION_TASKS
from ..tasks.preference import sequences
from . import Method, register
from ._common import MethodBuildError, apply_peft

PARAMS = (
    Param(
        "tokens",
        "int",
        1000,
        min=1,
        max=100_000,
        label="Tokens",
        help="How many tokens' embeddings train: the ones your training rows use most (counted before the first "
        "step; never more than the vocabulary holds). Each trains one row of the embedding table.",
    ),
)


def token_count(model, params: dict) -> int:
    return min(params["tokens"], model.get_input_embeddings().weight.shape[0])


def build(model, params: dict, task: str, *, new_modules: Sequence[str] = (), total_steps: int | None = None):
    from peft import TrainableTokensConfig

    from ..tasks import peft_task_type

    # The first ids stand in until _data_init has counted the rows: the number of rows that train (all the
    # trainable count depends on) is fixed here, which tokens they are is not.
    config = TrainableTokensConfig(
        task_type=peft_task_type(task),
        token_indices=list(range(token_count(model, params))),
    )
    return apply_peft(model, config, "Trainable Tokens")


def most_used(features: Sequence[dict], count: int, vocabulary: int) -> list[int]:
    """The count ids the rows use most (ties by id, so a resume picks the same ones), topped up with the lowest
    unused ids when the rows hold fewer distinct tokens: the trainable count shown before the run holds."""
    seen: Counter = Counter()
    for feature in features:
        for part in sequences(feature):  # a preference row: both its answers' sequences, as the model reads them
            seen.update(part["input_ids"])
    chosen = [token for token, _ in sorted(seen.items(), key=lambda item: (-item[1], item[0]))[:count]]
    taken = set(chosen)
    spare = (token for token in range(vocabulary) if token not in taken)
    return sorted(chosen + [next(spare) for _ in range(count - len(chosen))])


def _data_init(model, params: dict, sample) -> None:
    """Point the embedding's adapter at the most used tokens (again on a resume: the same rows give the same ids,
    and the checkpoint's rows then load into them)."""
    from peft.tuners.trainable_tokens.layer import TrainableTokensLayer

    layers = [m for m in model.modules() if isinstance(m, TrainableTokensLayer) and m.tied_adapter is None]
    if not layers:
        raise MethodBuildError("Trainable Tokens: the model has no token adapter to point at the data's tokens")
    for layer in layers:
        for name in list(layer.token_indices):
            config = model.peft_config[name]
            config.token_indices = most_used(
                sample.features, len(layer.token_indices[name]), layer.get_base_layer().weight.shape[0]
            )
            # a tied output layer (Gemma's) shares these dicts, so it follows
            layer.update_layer(name, config=config)


METHOD = register(
    Method(
        name="trainable_tokens",
        label="Trainable Tokens",
        family="selective",
        description="Trains only the word embeddings of the tokens your data uses most: the rest of the model "
        "stays as it is. For models that write (not classifiers).",
        paper="https://huggingface.co/docs/peft/package_reference/trainable_tokens",
        params=PARAMS,
        tasks=tuple(sorted(GENERATION_TASKS)),
        recommended_learning_rate=1e-3,
        can_merge=True,  # the trained rows replace the embedding's
        build=build,
        acts_on=("input",),
        how="selects",
        data_init=_data_init,
    )
)
