"""Context-PEFT's routing (Shah et al., 2023, arxiv.org/abs/2312.08900): each token goes through the adapter of its
group, here the prompt's tokens through one LoRA and the answer's through another, in the same forward pass.

Each LoRA layer holds both adapters, both active; a hook on each adapter's down-projection multiplies its output
by the token mask of its group, so B(mask * A x) = mask * B A x: the other group's tokens get nothing from it. The
masks are set before each forward pass of the wrapped model, from:
- the labels of the batch in flight (labels_in_flight, set by the generation runner around its forward passes):
  a labelled token is an answer token, every other one a prompt token;
- else, in generation, the key-value cache: the first pass (an empty cache) reads the prompt (prompt group), every
  later pass writes the answer one token at a time (answer group). Generation uses the cache, as transformers
  does by default; a pass with neither labels nor a filled cache is read as prompt.
Standard library only at module level.
"""

from __future__ import annotations

import contextvars
from contextlib import contextmanager

IGNORE_INDEX = -100
ANSWER, PROMPT = "default", "prompt"  # peft adapter names: the answer's is the one peft saves and loads first
_LABELS: contextvars.ContextVar = contextvars.ContextVar("peftcore_labels_in_flight", default=None)


@contextmanager
def labels_in_flight(labels):
    """Make the batch's labels known to a router for the forward passes inside the block."""
    token = _LABELS.set(labels)
    try:
        yield
    finally:
        _LABELS.reset(token)


class TokenRouter:
    """Routes each token of the wrapped model's forward passes to its group's adapter (see the module)."""

    def __init__(self, model):
        from peft.tuners.lora import LoraLayer

        inner = model.base_model.model
        self.answer = None  # [batch, tokens, 1]: True where the token is an answer token
        self.handles = [inner.register_forward_pre_hook(self._route, with_kwargs=True)]
        for module in inner.modules():
            if isinstance(module, LoraLayer) and PROMPT in module.lora_A:
                self.handles.append(module.lora_A[ANSWER].register_forward_hook(self._answer_only))
                self.handles.append(module.lora_A[PROMPT].register_forward_hook(self._prompt_only))

    def _route(self, module, args, kwargs):
        import torch

        tokens = kwargs.get("input_ids")
        if tokens is None:
            tokens = args[0] if args else kwargs.get("inputs_embeds")
        batch, length = tokens.shape[:2]
        labels = _LABELS.get()
        if labels is not None and tuple(labels.shape) == (batch, length):
            answer = labels.ne(IGNORE_INDEX)
        else:
            cache = kwargs.get("past_key_values")
            later = cache is not None and hasattr(cache, "get_seq_length") and cache.get_seq_length() > 0
            answer = torch.full((batch, length), later, dtype=torch.bool, device=tokens.device)
        self.answer = answer.unsqueeze(-1)

    def _answer_only(self, module, inputs, output):
        return output * self.answer.to(output.dtype)

    def _prompt_only(self, module, inputs, output):
        return output * (~self.answer).to(output.dtype)
