"""OFT: learn an orthogonal (block-diagonal) rotation of each adapted weight (Qiu et al., 2023), through peft."""

from __future__ import annotations

from ..schema import Param
from ..tasks import ALL_TASKS
from . import Method, linear_only, register
from ._common import peft_builder, targeting_params

PARAMS = (
    Param(
        "oft_block_size",
        "int",
        32,
        min=2,
        max=1024,
        label="Block size",
        help="The size of each rotation block; it must divide the layer width (e.g. 384 for MiniLM). Larger "
        "blocks can express more and train more weights.",
    ),
    Param(
        "module_dropout",
        "float",
        0.0,
        min=0.0,
        max=0.9,
        label="Block dropout",
        help="The chance of leaving a rotation block out for one step, against over-fitting.",
    ),
    *targeting_params("peft's usual layers for this model (query and value in BERT)"),
)


def _options(params: dict, model, total_steps) -> dict:
    return dict(r=0, oft_block_size=params["oft_block_size"], module_dropout=params["module_dropout"])


METHOD = register(
    Method(
        name="oft",
        label="OFT",
        family="reparameterised",
        description="Rotates the adapted weights instead of adding to them, which keeps what the model already "
        "knows intact.",
        paper="https://arxiv.org/abs/2306.07280",
        params=PARAMS,
        tasks=ALL_TASKS,
        recommended_learning_rate=1e-3,
        can_merge=True,
        build=peft_builder("OFTConfig", "OFT", _options, "TRANSFORMERS_MODELS_TO_OFT_TARGET_MODULES_MAPPING"),
        acts_on=("attention",),
        how="reparameterises",
        refusals=linear_only("OFT"),
    )
)
