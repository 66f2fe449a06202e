"""How a classifier turns a text's token vectors into one vector: the way the checkpoint was trained to.

Sentence-transformers checkpoints (all-MiniLM-L6-v2, the bundled model) were trained to average the token
vectors; their BERT pooler (first token, dense, tanh) never took part in that training, so a classifier built
on it starts from an untrained projection. "mean" swaps the pooler for a masked mean over the real tokens;
"model" keeps the architecture's own head. The choice is recorded in the adapter folder (peftcore_method.json)
so the playground pools as training did; adapters from before it was recorded used "model".
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

MEAN, MODEL = "mean", "model"
POOLING_CONFIG = Path("1_Pooling") / "config.json"


def checkpoint_pooling(folder: Path) -> tuple[str, str]:
    """(pooling, why) for a model folder, read from its sentence-transformers files (no torch)."""
    try:
        config = json.loads((Path(folder) / POOLING_CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return MODEL, "the checkpoint names no pooling of its own, so the architecture's classification head is used"
    if isinstance(config, dict) and config.get("pooling_mode_mean_tokens"):
        return MEAN, (
            "the checkpoint is a sentence-transformers model trained to average its token vectors "
            "(1_Pooling/config.json); its BERT pooler was never trained"
        )
    return MODEL, "the checkpoint's sentence-transformers pooling is not a mean, so the model's own head is used"


def apply_pooling(model, pooling: str) -> bool:
    """Make a sequence-classification model pool as `pooling` says; True when the model was changed. Only models
    whose head reads a `pooler` submodule of the encoder (the BERT family) can pool by mean; others keep theirs."""
    if pooling != MEAN:
        return False
    encoder = getattr(model, model.base_model_prefix, None)
    if encoder is None or getattr(encoder, "pooler", None) is None:
        return False
    pooler = MeanPooler()
    encoder.pooler = pooler
    # The pooler sees only the hidden states; the encoder's own call carries the mask it needs.
    encoder.register_forward_pre_hook(pooler.remember_mask, with_kwargs=True)
    return True


@cache
def _mean_pooler_class():
    import torch

    class _MeanPooler(torch.nn.Module):
        """The masked mean of the last hidden states over the real (unpadded) tokens; no weights."""

        def __init__(self):
            super().__init__()
            self.mask = None

        def remember_mask(self, module, args, kwargs):
            self.mask = kwargs.get("attention_mask")
            if self.mask is None and len(args) > 1:
                self.mask = args[1]
            return None

        def forward(self, hidden_states):
            mask = self.mask
            if mask is not None and mask.shape[1] > hidden_states.shape[1]:
                mask = mask[:, -hidden_states.shape[1] :]  # prefix tuning puts its prefix's mask in front
            if mask is None or mask.shape[:2] != hidden_states.shape[:2]:
                return hidden_states.mean(dim=1)
            weights = mask.to(hidden_states.dtype).unsqueeze(-1)
            return (hidden_states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)

    return _MeanPooler


def MeanPooler():  # a class built on first use, so importing this module needs no torch
    return _mean_pooler_class()()
