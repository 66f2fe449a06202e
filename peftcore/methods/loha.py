"""LoHa: a weight update built from the Hadamard product of two low-rank products (Hyeon-Woo et al., 2022)."""

from __future__ import annotations

from ._lycoris import register_lycoris

METHOD = register_lycoris(
    name="loha",
    label="LoHa",
    rank_help="The size of each low-rank factor. The product of two rank-r factors can express rank r², so small "
    "ranks go a long way.",
    description="A LoRA relative that multiplies two small updates element by element, reaching more with "
    "the same number of weights.",
    paper="https://arxiv.org/abs/2108.06098",
)
