"""Light-PEFT's early pruning of the base model (Gu et al., 2024, arxiv.org/abs/2406.03792): for a short first
phase each attention head's and each feed-forward channel's importance is summed (first-order Taylor through a
mask of ones on its output: |d loss / d mask|, as in Michel et al. 2019), then each layer keeps its most important
share of heads and of channels, and training goes on with a smaller, faster model.

The cut is physical: the query, key and value rows of a cut head and the columns of the attention output that
read it go, as do a cut channel's rows of the FFN matrices that write it (BERT's intermediate, a decoder's gate
and up) and column of the one that reads it (with the LoRA factors on them and their optimizer moments). That equals zeroing the cut head's or channel's output, which is what the
tests check.

The adapter cannot carry a smaller base model, so it carries the plan instead (PLAN_FILE: each layer's kept heads
and channels); adapters.load_adapter cuts a freshly loaded base the same way before it applies the adapter, and
a merge puts the cut rows and columns back as zeros (expand), so a merged model has the base's shapes and
loads in plain transformers. BERT-style encoders and Llama-style decoders (Gemma, Mistral, Qwen): a decoder with
grouped-query attention cuts a key/value head with all the query heads that read it. LoRA only (its factors are
sliced with the base rows). Standard library only at module level (the job form checks base_pruning_problem).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .light_peft import cut_state, median_gap
from .quantize import FOUR_BIT

PLAN_FILE = "base_pruning.json"
ADAPTER = "default"
BERT_ATTENTION = ".attention.self"
DECODER_ATTENTION = ".self_attn"
# Llama's layout cut as _decoder_block cuts it: reshapes by -1, and any q/k norm is one head wide. Others that name
# their layers alike are not (OLMo 2's q/k norms span every head, StableLM reshapes by its head count).
DECODER_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text"})
# What the plan file's code must do to a base model before PeftModel.from_pretrained (the model card's lines).
LOAD_LINES = (
    "# Light-PEFT cut heads and FFN channels of the base: cut a fresh one the same way with the studio's training",
    "# core (peftcore: its folder on sys.path, or the studio installed)",
    "import peftcore.base_pruning",
    "peftcore.base_pruning.apply_plan(model, peftcore.base_pruning.read_plan(folder))",
    "model = PeftModel.from_pretrained(model, folder)",
)


def wanted(params: dict) -> bool:
    return bool(params.get("prune_heads") or params.get("prune_channels"))


def reference_problem(task, params: dict) -> str | None:
    """The reference a cut base would change, for a task whose reference is the base model with the adapter
    switched off (DPO, KTO), or None. The caller says what would cut it and what to do."""
    loss = params.get("preference_loss")
    if getattr(task, "reference_by_disabling_adapter", False) and loss != "orpo":
        return f"{str(loss).upper()}'s reference (the base model with the adapter switched off)"
    return None


def model_type_problem(model_type: str | None) -> str | None:
    """Why a model that writes (by its config's model_type) cannot have its base cut, or None. Encoders are checked
    by their layout when the run starts (blocks)."""
    if model_type in DECODER_TYPES:
        return None
    return (
        f"pruning the base model of a model that writes works on {', '.join(sorted(DECODER_TYPES))} models; "
        f"{model_type or 'this model'} is not one: set both shares to 0"
    )


def heads_problem(share: float, heads: int, kv_heads: int) -> str | None:
    """Why cutting this share of each layer's heads would cut none, or None. A cut takes whole groups of query
    heads that share a key/value head (one head a group in BERT), and int(share x groups) of them."""
    if not share or int(share * kv_heads) > 0:
        return None
    if kv_heads == 1:
        return (
            f"each layer's {heads} query heads share one key/value head, which the cut must keep, so no head can go: "
            f"set the heads' share to 0 (the FFN channels can still be cut)"
        )
    units = "heads" if kv_heads == heads else "groups of query heads that share a key/value head"
    return f"a share of {share} of each layer's {kv_heads} {units} cuts none: use at least {1 / kv_heads:.2f}, or 0"


def base_pruning_problem(method, method_params: dict, params: dict, task=None) -> str | None:
    """Why pruning the base model cannot run with this method, task and settings, or None."""
    if not wanted(params):
        return None
    if problem := reference_problem(task, params):
        return (
            f"pruning the base model would change {problem} in the middle of the run: choose the ORPO loss, which "
            f"has no reference, or set both shares to 0"
        )
    if method.name != "lora":
        return (
            f"pruning the base model's heads and channels (Light-PEFT) works with LoRA, whose factors are cut with "
            f"them; {method.label} is not: choose LoRA or set both shares to 0"
        )
    if params.get("quantize") == FOUR_BIT:
        return "pruning the base model cannot cut a 4-bit (QLoRA) base's packed weights; turn one of them off"
    for option, what in (("use_dora", "DoRA"), ("use_kasa", "KaSA")):
        if method_params.get(option):
            return f"pruning the base model does not work with {what}; turn one of them off"
    if (method_params.get("bd_blocks") or 0) > 1:
        return "pruning the base model would break BD-LoRA's blocks; turn one of them off"
    from .lora_ga import BASE_MOVING_INITS

    if method_params.get("init") in BASE_MOVING_INITS:
        return (
            "pruning the base model does not work with the PiSSA, OLoRA, LoRA-GA or CorDA start, which move part of "
            "the base weights into the adapter; choose the default start or turn pruning off"
        )
    return None


@dataclass(frozen=True)
class Block:
    """One transformer block's prunable parts. heads: the query heads (units of head_size output rows of q and
    input columns of out); group: query heads per key/value head (grouped-query attention cuts whole groups)."""

    attention: Any
    q: Any
    k: Any
    v: Any
    out: Any
    ffn_in: tuple  # the FFN matrices whose output rows are channels (BERT's intermediate; a decoder's gate and up)
    ffn_out: Any
    head_size: int
    group: int

    @property
    def heads(self) -> int:
        return self.out.in_features // self.head_size

    @property
    def channels(self) -> int:
        return self.ffn_out.in_features


def _linear(module) -> bool:
    from peft.tuners.lora import LoraLayer
    from torch import nn

    return isinstance(module, (nn.Linear, LoraLayer))  # a plain Linear, or one peft wrapped


def _bert_block(name: str, module, modules: dict) -> tuple[str, Block] | None:
    if not name.endswith(BERT_ATTENTION) or not hasattr(module, "attention_head_size"):
        return None
    if not all(_linear(getattr(module, p, None)) for p in ("query", "key", "value")):
        return None  # another attention layout under the same name (DeBERTa's query_proj, in_proj)
    block = name[: -len(BERT_ATTENTION)]
    parts = [modules.get(f"{block}.{p}") for p in ("attention.output.dense", "intermediate.dense", "output.dense")]
    if not all(_linear(part) for part in parts):
        return None
    out, ffn_in, ffn_out = parts
    size = module.attention_head_size
    return block, Block(module, module.query, module.key, module.value, out, (ffn_in,), ffn_out, size, 1)


def _decoder_block(name: str, module, modules: dict) -> tuple[str, Block] | None:
    """Llama's layout, which Gemma, Mistral and Qwen share: self_attn.{q,k,v,o}_proj, mlp.{gate,up,down}_proj."""
    if not name.endswith(DECODER_ATTENTION) or not hasattr(module, "num_key_value_groups"):
        return None
    projections = [getattr(module, p, None) for p in ("q_proj", "k_proj", "v_proj", "o_proj")]
    block = name[: -len(DECODER_ATTENTION)]
    ffn = [modules.get(f"{block}.mlp.{p}") for p in ("gate_proj", "up_proj", "down_proj")]
    if not all(_linear(part) for part in projections + ffn) or not getattr(module, "head_dim", None):
        return None
    q, k, v, out = projections
    return block, Block(module, q, k, v, out, tuple(ffn[:2]), ffn[2], module.head_dim, module.num_key_value_groups)


def blocks(model) -> dict[str, Block]:
    """{block name (as in the plain base model): Block} of a BERT-style encoder or a Llama-style decoder, plain or
    wrapped by peft; {} for any other architecture."""
    inner = model.base_model.model if hasattr(model, "peft_config") else model
    modules = dict(inner.named_modules())
    decoder = getattr(getattr(inner, "config", None), "model_type", None) in DECODER_TYPES
    found = {}
    for name, module in modules.items():
        hit = _bert_block(name, module, modules) or (decoder and _decoder_block(name, module, modules))
        if hit:
            found[hit[0]] = hit[1]
    return found


def architecture_problem(model) -> str | None:
    if blocks(model):
        return None
    kind = type(model.get_base_model() if hasattr(model, "get_base_model") else model).__name__
    return (
        f"pruning the base model's heads and channels works on BERT-style encoders (query, key and value layers) "
        f"and Llama-style decoders ({', '.join(sorted(DECODER_TYPES))}); {kind} is neither: set both shares to 0"
    )


class BasePruner:
    """Sums the heads' and channels' importance through mask hooks and optimizer step hooks, and cuts them after
    step `at_step` (see the module)."""

    def __init__(self, run, heads: float, channels: float, at_step: int, saved: dict | None = None, step: int = 0):
        """saved, step: a checkpoint's state and step, when the run resumes from one."""
        import torch

        self.run, self.heads, self.channels, self.at_step, self.step = run, heads, channels, at_step, step
        self.blocks = blocks(run.model)
        state = dict(saved or {})
        importance = state.get("importance") or {}
        self.masks: dict[str, torch.Tensor] = {}
        self.importance: dict[str, torch.Tensor] = {}
        self.handles = []
        self.times: list[float] = []
        for block, parts in self.blocks.items():
            measured = [(f"{block}|heads", parts.heads, parts.out)] if heads else []
            measured += [(f"{block}|ffn", parts.channels, parts.ffn_out)] if channels else []
            # only what is to be cut is measured: a share of 0 costs no mask, hook or gradient
            for key, n, module in measured:
                saved_sum = importance.get(key)
                self.importance[key] = torch.tensor(saved_sum or [0.0] * n, dtype=torch.float64)
                if "kept" not in state:
                    mask = torch.ones(n, device=run.device, requires_grad=True)
                    self.masks[key] = mask
                    repeat = parts.head_size if key.endswith("heads") else 1
                    self.handles.append(module.register_forward_pre_hook(_masking(mask, repeat)))
        run.progress.base_pruning = {**state, "importance": {k: v.tolist() for k, v in self.importance.items()}}
        self.handles += [
            run.optimizer.register_step_pre_hook(self._accumulate),
            run.optimizer.register_step_post_hook(self._after_step),
        ]

    @property
    def done(self) -> bool:
        return "kept" in (self.run.progress.base_pruning or {})

    def _accumulate(self, optimizer, args, kwargs) -> None:
        import torch

        if self.done or not self.masks:
            return
        grads = [m.grad.abs() if m.grad is not None else torch.zeros_like(m) for m in self.masks.values()]
        # summed over the processes every step (the masks' gradients are each process's own), so that every
        # process, and a checkpoint rank 0 writes, holds the same sums
        summed = torch.tensor(self.run.group.sum(torch.cat(grads).double().cpu().tolist()), dtype=torch.float64)
        flat = summed.split([len(m) for m in self.masks.values()])
        for key, mask, score in zip(self.masks, self.masks.values(), flat):
            self.importance[key] += score
            mask.grad = None
        self.run.progress.base_pruning["importance"] = {k: v.tolist() for k, v in self.importance.items()}

    def _after_step(self, optimizer, args, kwargs) -> None:
        self.step += 1
        self.times.append(time.monotonic())
        if not self.done and self.step >= self.at_step:
            self._cut()

    def _cut(self) -> None:
        import torch

        plan = {"heads": {}, "ffn": {}}
        for key, score in self.importance.items():
            block, kind = key.split("|")
            share = self.heads if kind == "heads" else self.channels
            # grouped-query attention cuts a key/value head with all its query heads: a group's score is theirs
            group = self.blocks[block].group if kind == "heads" else 1
            units = score.view(-1, group).sum(1)
            keep = max(1, len(units) - int(share * len(units)))  # every layer keeps at least one
            kept = sorted(torch.topk(units, keep).indices.tolist())
            plan[kind][block] = [u * group + i for u in kept for i in range(group)]
        for handle in self.handles[: len(self.masks)]:
            handle.remove()
        self.handles, self.masks = self.handles[len(self.masks) :], {}
        before = _counts(self.blocks)
        apply_plan(self.run.model, plan, self.run.optimizer)
        self.run.progress.base_pruning.update(
            kept=plan, at_step=self.step, before=before, seconds_per_step_before=median_gap(self.times)
        )
        self.times = self.times[-1:]  # the next gaps are the smaller model's

    def plan(self) -> dict | None:
        return (self.run.progress.base_pruning or {}).get("kept")

    def report(self) -> dict | None:
        """The report's "base_pruning" section, or None when the run ended before the cut."""
        state = self.run.progress.base_pruning or {}
        if "kept" not in state:
            return None
        before, after = state.get("seconds_per_step_before"), median_gap(self.times)
        return {
            "at_step": state["at_step"],
            "before": state["before"],
            "after": _counts(blocks(self.run.model)),
            "share_heads": self.heads,
            "share_channels": self.channels,
            "seconds_per_step_before": before,
            "seconds_per_step_after": after,
            "step_time_saved": 1 - after / before if before and after else None,
        }

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []


def _masking(mask, repeat: int):
    def hook(module, args):
        return (args[0] * mask.to(args[0].dtype).repeat_interleave(repeat), *args[1:])

    return hook


def _counts(found: dict[str, Block]) -> dict:
    return {"heads": sum(b.heads for b in found.values()), "channels": sum(b.channels for b in found.values())}


def _head_rows(kept: list[int], size: int):
    import torch

    return torch.tensor([h * size + i for h in kept for i in range(size)], dtype=torch.long)


def _kv_heads(kept: list[int], group: int) -> list[int]:
    return sorted({h // group for h in kept})


def apply_plan(model, plan: dict, optimizer=None) -> None:
    """Cut a base model (plain, or wrapped by peft with LoRA) to the plan's kept heads and channels (indices in
    the unpruned model), with the LoRA factors on the cut rows and columns and their optimizer moments."""
    import torch

    found = blocks(model)
    for block, kept in plan.get("heads", {}).items():
        parts = found[block]
        rows, kv_rows = _head_rows(kept, parts.head_size), _head_rows(_kv_heads(kept, parts.group), parts.head_size)
        _cut(parts.q, rows, 0, optimizer)
        _cut(parts.k, kv_rows, 0, optimizer)
        _cut(parts.v, kv_rows, 0, optimizer)
        _cut(parts.out, rows, 1, optimizer)
        _heads(parts.attention, len(kept))
    for block, kept in plan.get("ffn", {}).items():
        parts = found[block]
        index = torch.tensor(kept, dtype=torch.long)
        for ffn_in in parts.ffn_in:
            _cut(ffn_in, index, 0, optimizer)
        _cut(parts.ffn_out, index, 1, optimizer)


def _heads(attention, count: int) -> None:
    """The attention layer's own head count, for the layouts that reshape by it rather than by -1 (as
    transformers' former prune_heads kept it); Llama-style attention reshapes by -1 and keeps no count."""
    if hasattr(attention, "attention_head_size"):
        attention.num_attention_heads = count
        attention.all_head_size = count * attention.attention_head_size


def _cut(module, index, dim: int, optimizer) -> None:
    """Keep the output rows (dim 0) or input columns (dim 1) in index of a Linear or a LoRA-wrapped one."""
    base = getattr(module, "base_layer", module)
    index = index.to(base.weight.device)
    base.weight.data = base.weight.data.index_select(dim, index).contiguous()
    if dim == 0 and base.bias is not None:
        base.bias.data = base.bias.data.index_select(0, index).contiguous()
    factors = getattr(module, "lora_B" if dim == 0 else "lora_A", {})
    for factor in factors.values():
        for parameter in [factor.weight] + ([factor.bias] if dim == 0 and factor.bias is not None else []):
            axis = 0 if parameter.ndim == 1 else dim
            cut_state(optimizer, parameter, index, axis)
            parameter.data = parameter.data.index_select(axis, index).contiguous()
            parameter.grad = None
        if dim == 0:
            factor.out_features = len(index)
        else:
            factor.in_features = len(index)
    for layer in {base, module}:
        if dim == 0:
            layer.out_features = len(index)
        else:
            layer.in_features = len(index)


def expand(model, plan: dict, sizes: dict) -> None:
    """The inverse of apply_plan for a merged (plain) model: each cut row or column back, as zeros, so the model
    has its config's shapes. A cut head's attention output columns and a cut channel's FFN output column are
    zero, so the model computes what the pruned one did. sizes: {"head_size", "heads", "channels"} unpruned."""
    import torch

    found = blocks(model)
    for block, kept in plan.get("heads", {}).items():
        parts, size = found[block], sizes["head_size"]
        rows, full = _head_rows(kept, size), sizes["heads"] * size
        kv_heads = sizes.get("kv_heads", sizes["heads"])  # plans written before decoders had no kv_heads
        kv_rows = _head_rows(_kv_heads(kept, sizes["heads"] // kv_heads), size)
        _grow(parts.q, rows, 0, full)
        _grow(parts.k, kv_rows, 0, kv_heads * size)
        _grow(parts.v, kv_rows, 0, kv_heads * size)
        _grow(parts.out, rows, 1, full)
        _heads(parts.attention, sizes["heads"])
    for block, kept in plan.get("ffn", {}).items():
        parts = found[block]
        index = torch.tensor(kept, dtype=torch.long)
        for ffn_in in parts.ffn_in:
            _grow(ffn_in, index, 0, sizes["channels"])
        _grow(parts.ffn_out, index, 1, sizes["channels"])


def _grow(linear, index, dim: int, full: int) -> None:
    import torch

    shape = list(linear.weight.shape)
    shape[dim] = full
    weight = torch.zeros(shape, dtype=linear.weight.dtype, device=linear.weight.device)
    weight.index_copy_(dim, index.to(weight.device), linear.weight.data)
    linear.weight.data = weight
    if dim == 0:
        if linear.bias is not None:
            bias = torch.zeros(full, dtype=linear.bias.dtype, device=linear.bias.device)
            bias.index_copy_(0, index.to(bias.device), linear.bias.data)
            linear.bias.data = bias
        linear.out_features = full
    else:
        linear.in_features = full


def write_plan(folder: Path, plan: dict, model) -> None:
    """The plan beside the adapter, with the unpruned sizes a merge needs to put the cut rows back."""
    config = (model.get_base_model() if hasattr(model, "get_base_model") else model).config
    config = getattr(config, "text_config", None) or config  # a multimodal wrapper's language model
    sizes = plan.get("sizes") or {
        "head_size": getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads,
        "heads": config.num_attention_heads,
        "kv_heads": getattr(config, "num_key_value_heads", None) or config.num_attention_heads,
        "channels": config.intermediate_size,
    }
    data = {"heads": plan.get("heads", {}), "ffn": plan.get("ffn", {}), "sizes": sizes}
    (Path(folder) / PLAN_FILE).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def read_plan(folder) -> dict | None:
    path = Path(folder) / PLAN_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))
