"""Placement: "attention / ffn / both" and a layer range, turned into module names for one architecture.

Names are regular expressions over the module names of the transformers model (peft full-matches a string
`target_modules` against every module name). A new architecture is one entry in LAYOUTS.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..schema import Param

PLACEMENTS = ("usual", "attention", "ffn", "both")


class PlacementError(ValueError):
    pass


@dataclass(frozen=True)
class Layout:
    block: str  # regex of one block's prefix, with {i} for the block index
    attention: tuple[str, ...]  # linear layers of the attention sub-layer, relative to the block
    ffn: tuple[str, ...]  # linear layers of the feed-forward sub-layer
    attention_out: str  # the layer whose output is the attention sub-layer's output (RED)
    ffn_out: str  # the layer whose output is the FFN sub-layer's output (RED)
    norms: tuple[str, str]  # (attention norm, FFN norm) of the block (LN-tuning)
    layers_attr: tuple[str, ...] = ("num_hidden_layers",)


_BERT = Layout(
    block=r"encoder\.layer\.{i}\.",
    attention=(r"attention\.self\.(query|key|value)", r"attention\.output\.dense"),
    ffn=(r"intermediate\.dense", r"output\.dense"),
    attention_out=r"attention\.output\.dense",
    ffn_out=r"output\.dense",
    norms=(r"attention\.output\.LayerNorm", r"output\.LayerNorm"),
)
_LLAMA = Layout(
    block=r"layers\.{i}\.",
    attention=(r"self_attn\.(q|k|v|o)_proj",),
    ffn=(r"mlp\.(gate|up|down)_proj",),
    attention_out=r"self_attn\.o_proj",
    ffn_out=r"mlp\.down_proj",
    norms=(r"input_layernorm", r"post_attention_layernorm"),
)
LAYOUTS: dict[str, Layout] = {
    "bert": _BERT,
    "roberta": _BERT,
    "xlm-roberta": _BERT,
    "distilbert": Layout(
        block=r"transformer\.layer\.{i}\.",
        attention=(r"attention\.(q_lin|k_lin|v_lin|out_lin)",),
        ffn=(r"ffn\.(lin1|lin2)",),
        attention_out=r"attention\.out_lin",
        ffn_out=r"ffn\.lin2",
        norms=(r"sa_layer_norm", r"output_layer_norm"),
        layers_attr=("n_layers",),
    ),
    "llama": _LLAMA,
    "mistral": _LLAMA,
    "qwen2": _LLAMA,
    # Gemma 3 (the bundled 270M): Llama's names, with a norm before and after each sub-layer
    "gemma3_text": Layout(
        block=_LLAMA.block,
        attention=_LLAMA.attention,
        ffn=_LLAMA.ffn,
        attention_out=_LLAMA.attention_out,
        ffn_out=_LLAMA.ffn_out,
        norms=(r"input_layernorm", r"pre_feedforward_layernorm"),
    ),
    "gpt2": Layout(
        block=r"h\.{i}\.",
        attention=(r"attn\.(c_attn|c_proj)",),
        ffn=(r"mlp\.(c_fc|c_proj)",),
        attention_out=r"attn\.c_proj",
        ffn_out=r"mlp\.c_proj",
        norms=(r"ln_1", r"ln_2"),
        layers_attr=("n_layer",),
    ),
    "t5": Layout(
        block=r"(encoder|decoder)\.block\.{i}\.",
        attention=(r"layer\.\d\.(SelfAttention|EncDecAttention)\.(q|k|v|o)",),
        ffn=(r"layer\.\d\.DenseReluDense\.(wi|wi_0|wi_1|wo)",),
        attention_out=r"layer\.0\.SelfAttention\.o",
        ffn_out=r"layer\.[12]\.DenseReluDense\.wo",
        norms=(r"layer\.0\.layer_norm", r"layer\.[12]\.layer_norm"),
        layers_attr=("num_layers",),
    ),
}


# The layers syntax parse_layers reads, block numbers of at most 4 digits (checked at submit, model unknown).
_BLOCKS = r"\s*\d{1,4}\s*(-\s*\d{1,4}\s*)?"
LAYERS_PATTERN = rf"\s*(all|(last|first)\s+\d{{1,4}}|{_BLOCKS}(,{_BLOCKS})*)\s*"


def placement_params(
    default: str = "usual", usual_help: str = "the method's usual layers for this model", offer_usual: bool = False
) -> tuple:
    """offer_usual: keep "usual" among the choices when the default is another placement."""
    offered = default == "usual" or offer_usual
    choices = PLACEMENTS if offered else tuple(p for p in PLACEMENTS if p != "usual")
    return (
        Param(
            "placement",
            "choice",
            default,
            choices=choices,
            label="Where",
            help="Which part of each block to adapt: attention, the feed-forward network (ffn) or both"
            + (f"; 'usual' is {usual_help}." if "usual" in choices else "."),
        ),
        Param(
            "layers",
            "str",
            "all",
            label="Layers",
            help="Which blocks to adapt: 'all', 'last 2', 'first 3', a range '0-3' or a list '0,2,5' (block 0 is "
            "nearest the input). Fewer blocks train fewer weights.",
            pattern=LAYERS_PATTERN,
            pattern_hint="use 'all', 'last 2', 'first 3', '0-3' or '0,2,5'",
        ),
    )


def layout_for(model_type: str) -> Layout:
    if model_type not in LAYOUTS:
        raise PlacementError(
            f"peftcore does not know where the attention and feed-forward layers of {model_type!r} models are; "
            "give target_modules instead"
        )
    return LAYOUTS[model_type]


def num_layers(config) -> int:
    layout = LAYOUTS.get(getattr(config, "model_type", ""))
    for attr in (layout.layers_attr if layout else ()) + ("num_hidden_layers", "n_layer", "num_layers"):
        value = getattr(config, attr, None)
        if isinstance(value, int):
            return value
    raise PlacementError("cannot tell how many blocks this model has")


def parse_layers(text: str, count: int) -> list[int]:
    """'all' | 'last K' | 'first K' | 'A-B' | 'A,B,C' -> sorted block indices in [0, count)."""
    value = (text or "all").strip().lower()
    if value == "all":
        return list(range(count))
    match = re.fullmatch(r"(last|first)\s+(\d+)", value)
    if match:
        k = int(match.group(2))
        if not 1 <= k <= count:
            raise PlacementError(f"layers: {value!r} asks for {k} blocks but the model has {count}")
        return list(range(count - k, count)) if match.group(1) == "last" else list(range(k))
    chosen: set[int] = set()
    for part in value.split(","):
        bounds = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not bounds:
            raise PlacementError(
                f"layers: {text!r} is not understood; use 'all', 'last 2', 'first 3', '0-3' or '0,2,5'"
            )
        low = int(bounds.group(1))
        high = int(bounds.group(2)) if bounds.group(2) else low
        if low > high or high >= count:
            raise PlacementError(f"layers: {part.strip()!r} is outside blocks 0-{count - 1} of this model")
        chosen.update(range(low, high + 1))
    return sorted(chosen)


def _alternatives(items) -> str:
    return "(" + "|".join(items) + ")"


def block_regex(model_type: str, layers: list[int]) -> str:
    """Regex matching the prefix of the chosen blocks (anywhere in the module name)."""
    layout = layout_for(model_type)
    return r"(.*\.)?" + layout.block.format(i=_alternatives(str(i) for i in layers))


def target_regex(config, placement: str, layers_text: str, usual: list[str] | None = None) -> str:
    """One regex naming the linear layers of `placement` in the chosen blocks. `usual` (plain module-name
    suffixes such as ['query', 'value']) is used for placement 'usual'."""
    model_type = getattr(config, "model_type", "")
    layout = layout_for(model_type)
    layers = parse_layers(layers_text, num_layers(config))
    if placement == "usual":
        if not usual:
            raise PlacementError(f"no usual layers are known for {model_type!r}; choose attention, ffn or both")
        inner = [r"(.*\.)?" + re.escape(name) for name in usual]
    else:
        inner = list(layout.attention if placement in ("attention", "both") else ()) + list(
            layout.ffn if placement in ("ffn", "both") else ()
        )
    return block_regex(model_type, layers) + _alternatives(inner)


def output_regex(config, placement: str, layers_text: str) -> str:
    """Regex of the layers whose outputs are the sub-layer representations (RED edits these)."""
    layout = layout_for(getattr(config, "model_type", ""))
    layers = parse_layers(layers_text, num_layers(config))
    inner = ([layout.attention_out] if placement in ("attention", "both") else []) + (
        [layout.ffn_out] if placement in ("ffn", "both", "usual") else []
    )
    return block_regex(config.model_type, layers) + _alternatives(inner)


def norm_regex(config, placement: str, layers_text: str) -> str:
    layout = layout_for(getattr(config, "model_type", ""))
    layers = parse_layers(layers_text, num_layers(config))
    attention_norm, ffn_norm = layout.norms
    inner = ([attention_norm] if placement in ("attention", "both", "usual") else []) + (
        [ffn_norm] if placement in ("ffn", "both", "usual") else []
    )
    return block_regex(config.model_type, layers) + _alternatives(inner)
