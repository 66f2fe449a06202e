"""LoKr: a weight update written as a Kronecker product of a small and a low-rank matrix (Yeh et al., 2023)."""

from __future__ import annotations

from ._lycoris import register_lycoris

METHOD = register_lycoris(
    name="lokr",
    label="LoKr",
    rank_help="The rank of the larger Kronecker factor.",
    description="A LoRA relative built from a Kronecker product; very few weights for a full-size update.",
    paper="https://arxiv.org/abs/2309.14859",
)
