"""Light-PEFT's early pruning of the base model (Gu et al., 2024, arxiv.org/abs/2406.03792): for a short first
phase each attention head's and each feed-forward channel's importance is summed (first-order Taylor through a
mask of ones on its output: |d loss / d mask|, as in Michel et al. 2019), then each layer keeps its most important
share of heads and of channels, and training goes on with a smaller, faster model.

The cut is physical: the query, key and value rows of a cut head and the columns of the attention output that
read it go, as do a cut channel's row of the first FFN matrix and column of the second (with the LoRA factors
on them and their optimizer moments). That equals zeroing the cut head's or channel's output, which is what the
tests check.

The adapter cannot carry a smaller base model, so it carries the plan instead (PLAN_FILE: each layer's kept heads
and channels); adapters.load_adapter cuts a freshly loaded base the same way before it applies the adapter, and
a merge puts the cut rows and columns back as zeros (expand), so a merged model has the base's shapes and
loads in plain transformers. BERT-style encoders only (the query/key/value layout); LoRA only (its factors are
sliced with the base rows). Standard library only at module level (the job form checks base_pruning_problem).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from .light_peft import cut_state, median_gap
from .quantize import FOUR_BIT

PLAN_FILE = "base_pruning.json"
ADAPTER = "default"
ATTENTION = ".attention.self"
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


def base_pruning_problem(method, method_params: dict, params: dict) -> str | None:
    """Why pruning the base model cannot run with this method and settings, or None."""
    if not wanted(params):
        return None
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


def blocks(model) -> dict:
    """{block name (as in the plain base model): (attention, attention output, FFN in, FFN out) modules} of a
    BERT-style encoder, plain or wrapped by peft; {} for any other architecture."""
    from peft.tuners.lora import LoraLayer
    from torch import nn

    linear = (nn.Linear, LoraLayer)  # a plain Linear, or one peft wrapped
    inner = model.base_model.model if hasattr(model, "peft_config") else model
    modules = dict(inner.named_modules())
    found = {}
    for name, module in modules.items():
        if not name.endswith(ATTENTION) or not hasattr(module, "attention_head_size"):
            continue
        if not all(isinstance(getattr(module, p, None), linear) for p in ("query", "key", "value")):
            continue  # another attention layout under the same name (DeBERTa's query_proj, in_proj)
        block = name[: -len(ATTENTION)]
        parts = [modules.get(f"{block}.{p}") for p in ("attention.output.dense", "intermediate.dense", "output.dense")]
        if all(part is not None for part in parts):
            found[block] = (module, *parts)
    return found


def architecture_problem(model) -> str | None:
    if blocks(model):
        return None
    kind = type(model.get_base_model() if hasattr(model, "get_base_model") else model).__name__
    return (
        f"pruning the base model's heads and channels works on BERT-style encoders (query, key and value layers); "
        f"{kind} is not one: set both shares to 0"
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
        for block, (attention, attention_out, _, ffn_out) in self.blocks.items():
            size = attention_out.in_features // attention.attention_head_size
            for key, n, module in (
                (f"{block}|heads", size, attention_out),
                (f"{block}|ffn", ffn_out.in_features, ffn_out),
            ):
                saved_sum = importance.get(key)
                self.importance[key] = torch.tensor(saved_sum or [0.0] * n, dtype=torch.float64)
                if "kept" not in state:
                    mask = torch.ones(n, device=run.device, requires_grad=True)
                    self.masks[key] = mask
                    repeat = attention.attention_head_size if key.endswith("heads") else 1
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
            keep = max(1, len(score) - int(share * len(score)))  # every layer keeps at least one
            plan[kind][block] = sorted(torch.topk(score, keep).indices.tolist())
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


def _counts(found: dict) -> dict:
    heads = sum(out.in_features // attention.attention_head_size for attention, out, _, _ in found.values())
    return {"heads": heads, "channels": sum(ffn_out.in_features for *_, ffn_out in found.values())}


def apply_plan(model, plan: dict, optimizer=None) -> None:
    """Cut a base model (plain, or wrapped by peft with LoRA) to the plan's kept heads and channels (indices in
    the unpruned model), with the LoRA factors on the cut rows and columns and their optimizer moments."""
    import torch

    found = blocks(model)
    for block, kept in plan.get("heads", {}).items():
        attention, attention_out, _, _ = found[block]
        size = attention.attention_head_size
        index = torch.tensor([h * size + i for h in kept for i in range(size)], dtype=torch.long)
        for name in ("query", "key", "value"):
            _cut(getattr(attention, name), index, 0, optimizer)
        _cut(attention_out, index, 1, optimizer)
        _heads(attention, len(kept))
    for block, kept in plan.get("ffn", {}).items():
        _, _, ffn_in, ffn_out = found[block]
        index = torch.tensor(kept, dtype=torch.long)
        _cut(ffn_in, index, 0, optimizer)
        _cut(ffn_out, index, 1, optimizer)


def _heads(attention, count: int) -> None:
    """The attention layer's own head count, for the layouts that reshape by it rather than by -1 (as
    transformers' former prune_heads kept it)."""
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
        attention, attention_out, _, _ = found[block]
        size = sizes["head_size"]
        index = torch.tensor([h * size + i for h in kept for i in range(size)], dtype=torch.long)
        full = sizes["heads"] * size
        for name in ("query", "key", "value"):
            _grow(getattr(attention, name), index, 0, full)
        _grow(attention_out, index, 1, full)
        _heads(attention, sizes["heads"])
    for block, kept in plan.get("ffn", {}).items():
        _, _, ffn_in, ffn_out = found[block]
        index = torch.tensor(kept, dtype=torch.long)
        _grow(ffn_in, index, 0, sizes["channels"])
        _grow(ffn_out, index, 1, sizes["channels"])


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
    sizes = plan.get("sizes") or {
        "head_size": config.hidden_size // config.num_attention_heads,
        "heads": config.num_attention_heads,
        "channels": config.intermediate_size,
    }
    data = {"heads": plan.get("heads", {}), "ffn": plan.get("ffn", {}), "sizes": sizes}
    (Path(folder) / PLAN_FILE).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def read_plan(folder) -> dict | None:
    path = Path(folder) / PLAN_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))
