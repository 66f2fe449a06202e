"""BA-LoRA's three regularisers (Chang et al., 2024, arxiv.org/abs/2408.04556), as options of LoRA for text
classification: they work on the features the classifier head is given (one vector per text), each weighted by
its own option, 0 being off:

- consistency: the mean squared distance between the adapted model's normalised features and the untouched
  model's (the same forward pass with the adapter switched off), so fine-tuning keeps what pre-training knew;
- diversity: the squared off-diagonal covariance of the batch's features, so feature dimensions do not collapse
  onto each other;
- SVD: minus the share of the batch feature matrix's singular values held by its top k, so the features keep a
  few strong, general directions rather than many noisy ones.

Used through the training loop's batch regularisers (loop.py): start() before the task's forward pass, penalty()
after it, on the same micro-batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

TOP_K = 4  # singular values the SVD regulariser favours (the paper's k for NLU)


class BiasAlleviation:
    def __init__(self, model, head: torch.nn.Module, consistency: float, diversity: float, svd: float):
        self.model, self.weights = model, (consistency, diversity, svd)
        self.captured: list[torch.Tensor] = []
        self.mask = None
        self.handle = head.register_forward_pre_hook(self._capture)

    def _capture(self, module, args) -> None:
        features = args[0] if args else None
        if torch.is_tensor(features):
            self.captured.append(features)

    def _pooled(self, features: torch.Tensor) -> torch.Tensor:
        """One vector per text: a 3-D head input (RoBERTa's, a decoder's score layer) averaged over real tokens."""
        if features.dim() == 2:
            return features.float()
        mask = self.mask
        if mask is None or mask.shape != features.shape[:2]:
            return features.float().mean(dim=1)
        weights = mask.to(features.dtype).unsqueeze(-1)
        return ((features * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)).float()

    def start(self, chunk: dict) -> None:
        self.captured, self.mask = [], chunk.get("attention_mask")

    def penalty(self, chunk: dict) -> torch.Tensor | float:
        if not self.captured:
            return 0.0
        features = self._pooled(self.captured[-1])
        consistency, diversity, svd = self.weights
        total = features.new_zeros(())
        if consistency:
            total = total + consistency * F.mse_loss(F.normalize(features, dim=-1), self._untouched(chunk))
        if diversity and len(features) > 1:
            centred = features - features.mean(dim=0)
            covariance = centred.T @ centred / (len(features) - 1)
            off_diagonal = covariance - torch.diag(torch.diagonal(covariance))
            total = total + diversity * off_diagonal.pow(2).sum() / features.shape[-1]
        if svd and len(features) > 1:
            values = torch.linalg.svdvals(features)
            total = total - svd * values[:TOP_K].sum() / values.sum().clamp(min=1e-12)
        self.captured = []
        return total

    def _untouched(self, chunk: dict) -> torch.Tensor:
        """The normalised features of the same texts with the adapter off (no gradient)."""
        self.captured = []
        inputs = {key: value for key, value in chunk.items() if key != "labels"}
        with torch.no_grad(), self.model.disable_adapter():
            self.model(**inputs)
        return F.normalize(self._pooled(self.captured[-1]), dim=-1)

    def remove(self) -> None:
        self.handle.remove()


def head_module(model, new_modules: Sequence[str]):
    """The outermost module named as the new head (peft's wrapper around it when it trains), or None: hooking the
    wrapper sees the head's input whether the adapter is on or off."""
    for name, module in model.named_modules():
        if any(name == new or name.endswith(f".{new}") for new in new_modules):
            return module
    return None


def regulariser(model, method_params: dict, new_modules: Sequence[str], classification: bool) -> BiasAlleviation | None:
    """BA-LoRA's regularisers for this run, or None when all three weights are 0."""
    weights = tuple(method_params.get(key) or 0.0 for key in ("ba_consistency", "ba_diversity", "ba_svd"))
    if not any(weights):
        return None
    if not classification:
        raise ValueError(
            "BA-LoRA's regularisers are offered for text classification only; set the three BA-LoRA weights to 0"
        )
    head = head_module(model, new_modules)
    if head is None:
        raise ValueError(
            "BA-LoRA's regularisers work on a new classification head's features, and this model has none; set "
            "the three BA-LoRA weights to 0"
        )
    return BiasAlleviation(model, head, *weights)
