"""DEFT (Runwal, Pedapati & Chen, AAAI 2024, arxiv.org/abs/2402.01911): a density loss added to any method's
training objective so that fewer feed-forward activations fire, which sparsity-aware hardware turns into
cheaper inference; and the measure the report shows before and after training.

Density is the share of a feed-forward block's activations (the output of its non-linearity, over real tokens
only) that are positive. A count has no gradient, so the loss uses a smooth stand-in: tanh(BETA x the positive
part), near 1 for a clearly firing unit and 0 for a silent one, averaged like the count.
"""

from __future__ import annotations

import re
from contextlib import contextmanager

import torch

# The names transformers gives the feed-forward non-linearity: BERT-family `intermediate.intermediate_act_fn`,
# Llama/Gemma/Qwen `mlp.act_fn`, GPT-2 `mlp.act`, T5 `DenseReluDense.act`, DistilBERT `ffn.activation`.
ACTIVATION_NAMES = ("intermediate_act_fn", "act_fn", "act", "activation")
_IN_BLOCK = re.compile(r"\.\d+\.")
BETA = 10.0  # how sharply the stand-in separates firing from silent units
MEASURE_ROWS = 256  # evaluation rows the report's densities are measured on


def activation_modules(model) -> list[tuple[str, torch.nn.Module]]:
    """(name, module) of every feed-forward non-linearity inside a numbered block (not BERT's pooler), each once."""
    seen, found = set(), []
    for name, module in model.named_modules():
        if name.rsplit(".", 1)[-1] in ACTIVATION_NAMES and _IN_BLOCK.search(name) and id(module) not in seen:
            seen.add(id(module))
            found.append((name, module))
    return found


class DensityMeter:
    """Forward hooks on the feed-forward non-linearities. While training (`penalising`), each forward pass adds
    up the smooth density; while measuring (`counting`), the exact count. Between them the hooks do nothing."""

    def __init__(self, model):
        self.modules = activation_modules(model)
        if not self.modules:
            raise ValueError("no feed-forward activation found in this model, so its density cannot be measured")
        self.mask = None
        self.penalising = self.counting = False
        self._smooth: list[torch.Tensor] = []
        self.fired = self.seen = 0
        self.handles = [module.register_forward_hook(self._hook) for _, module in self.modules]

    def _real(self, output: torch.Tensor) -> torch.Tensor:
        """The activations of real tokens, flattened (padding would count as silent units)."""
        mask = self.mask
        if mask is not None and mask.shape == output.shape[:2]:
            return output[mask.bool()]
        return output.reshape(-1, output.shape[-1])

    def _hook(self, module, inputs, output) -> None:
        if not (self.penalising or self.counting) or not torch.is_tensor(output):
            return
        real = self._real(output)
        if self.penalising:
            self._smooth.append(torch.tanh(BETA * torch.relu(real.float())).mean())
        if self.counting:
            self.fired += int((real > 0).sum())
            self.seen += real.numel()

    def start(self, attention_mask) -> None:
        """Before a training forward pass: remember the batch's mask and begin adding up."""
        self.mask, self.penalising, self._smooth = attention_mask, True, []

    def penalty(self) -> torch.Tensor | float:
        """The smooth density of the forward pass since start(), averaged over the layers; stops adding up."""
        self.penalising = False
        smooth, self._smooth = self._smooth, []
        return torch.stack(smooth).mean() if smooth else 0.0

    @contextmanager
    def counting_density(self):
        self.fired = self.seen = 0
        self.counting = True
        try:
            yield
        finally:
            self.counting = False

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


class DensityLoss:
    """The density loss as one of the training loop's batch regularisers (loop.py): start() before a training
    forward pass, penalty() after it."""

    def __init__(self, meter: DensityMeter, weight: float):
        self.meter, self.weight = meter, weight

    def start(self, chunk: dict) -> None:
        self.meter.start(chunk.get("attention_mask"))

    def penalty(self, chunk: dict):
        return self.weight * self.meter.penalty()

    def remove(self) -> None:
        pass  # the meter's hooks stay for the final measurement; train.py removes them after it


def measure(meter: DensityMeter, model, runner, features: list, device) -> float:
    """The share of positive feed-forward activations over real tokens, on up to MEASURE_ROWS rows spread over
    `features` (evaluation rows), in evaluation mode."""
    step = max(1, len(features) // MEASURE_ROWS)
    picked = features[::step][:MEASURE_ROWS]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), meter.counting_density():
            for start in range(0, len(picked), 32):
                batch = runner.collate(picked[start : start + 32])
                meter.mask = batch.get("attention_mask")
                keys = ("input_ids", "attention_mask", "task_ids")  # task_ids: a task per group (task_routing.py)
                inputs = {key: batch[key].to(device) for key in keys if key in batch}
                if getattr(model.config, "is_encoder_decoder", False) and "labels" in batch:
                    inputs["labels"] = batch["labels"].to(device)  # a seq2seq model's decoder needs its targets
                model(**inputs)
    finally:
        model.train(was_training)
    return meter.fired / meter.seen if meter.seen else 0.0
