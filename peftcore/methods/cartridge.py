"""Cartridges (Eyuboglu et al., 2025, arxiv.org/abs/2506.06266; peft's CARTRIDGE): a key-value cache prefix stored
as trainable weights, read by every attention layer as if the model had already read that many tokens. Started,
as the paper's best option, from the base model's own cache for the first tokens of the training rows, the first
position kept frozen as an attention sink."""

from __future__ import annotations

from ..schema import Param
from ..tasks.preference import sequences
from . import Method, register
from ._common import MethodBuildError, peft_builder

PARAMS = (
    Param(
        "num_virtual_tokens",
        "int",
        32,
        min=2,
        max=1024,
        label="Cartridge length",
        help="How many cached positions every attention layer reads before the prompt. They start as the base "
        "model's cache of the first tokens of your training rows.",
    ),
    Param(
        "num_frozen_tokens",
        "int",
        1,
        min=0,
        max=64,
        label="Frozen positions",
        help="The first positions stay as they start: many models park attention on the first token (an attention "
        "sink), and moving it can make training unstable. 1 as in the paper.",
    ),
)


def _options(params: dict, model, total_steps) -> dict:
    if params["num_frozen_tokens"] >= params["num_virtual_tokens"]:
        raise MethodBuildError(
            f"Cartridge: {params['num_frozen_tokens']} frozen positions leave none of the "
            f"{params['num_virtual_tokens']} to train; freeze fewer or lengthen the cartridge"
        )
    return dict(num_virtual_tokens=params["num_virtual_tokens"], num_frozen_tokens=params["num_frozen_tokens"])


def corpus_start(features, count: int) -> list[int]:
    """The first `count` token ids of the training rows read one after another (each row's own ids, as the model
    reads them)."""
    ids: list[int] = []
    for feature in features:
        ids.extend(sequences(feature)[0]["input_ids"])  # a preference row: its chosen answer's sequence
        if len(ids) >= count:
            return ids[:count]
    raise MethodBuildError(
        f"Cartridge: the training rows hold {len(ids)} tokens, fewer than the cartridge's {count} positions to start "
        "from; shorten the cartridge"
    )


def _data_init(model, params: dict, sample) -> None:
    """The cartridge from the base model's cache of the rows' first tokens (peft's initialiser; also on a resume,
    where the checkpoint then replaces what trained)."""
    import torch
    from peft import initialize_kv_prefix_from_past_key_values

    count = params["num_virtual_tokens"]
    ids = torch.tensor([corpus_start(sample.features, count)], device=sample.device)
    with torch.no_grad(), model.disable_adapter():
        cache = model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=True).past_key_values
    initialize_kv_prefix_from_past_key_values(model, past_key_values=cache, num_virtual_tokens=count)


METHOD = register(
    Method(
        name="cartridge",
        label="Cartridge",
        family="prompt",
        description="Learns a ready-made memory of keys and values that every attention layer reads before the "
        "prompt, started from the model's own reading of your data. For causal language models.",
        paper="https://arxiv.org/abs/2506.06266",
        params=PARAMS,
        tasks=("sft", "preference"),
        recommended_learning_rate=1e-2,
        can_merge=False,
        build=peft_builder("CartridgeConfig", "Cartridge", _options, targets=False),
        acts_on=("attention",),
        how="prompts",
        data_init=_data_init,
    )
)
