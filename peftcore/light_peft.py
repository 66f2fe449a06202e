"""Light-PEFT's early pruning of the adapter's ranks (Gu et al., 2024, arxiv.org/abs/2406.03792): for a short first
phase each LoRA rank's importance is summed (first-order Taylor: |weight x gradient| over the rank's row of A and
column of B, taken before every optimizer step); then the least important share of all ranks is cut at once (every
layer keeps at least one), and training goes on with the smaller adapter: fewer parameters, faster steps, a
smaller download.

The cut is physical: each layer's A and B (and their optimizer moments) keep only the surviving ranks, and the
peft config records each layer's rank and alpha (rank_pattern / alpha_pattern, alpha scaled so the layer's
scaling is unchanged), so plain peft reloads the adapter as it was trained. The importance sums and the cut live
in the run's Progress, so a checkpoint resumes exactly before or after the cut.

The paper also prunes the base model's attention heads and FFN channels: base_pruning.py, at the same step.
Standard library only at module level (the job form checks pruning_problem).
"""

from __future__ import annotations

import re
import statistics
import time

from .lora_ga import BASE_MOVING_INITS

ADAPTER = "default"


def pruning_problem(method, method_params: dict, params: dict) -> str | None:
    """Why rank pruning cannot run with this method and settings, or None."""
    if not params.get("prune_ranks"):
        return None
    if method.name != "lora":
        return (
            f"pruning the adapter's ranks (Light-PEFT) works with LoRA: {method.label} has no ranks to cut; choose "
            "LoRA or set the share to prune to 0"
        )
    if method_params.get("use_kasa"):
        return "pruning the adapter's ranks does not work with KaSA's singular-value layer; turn KaSA off or pruning"
    if (method_params.get("bd_blocks") or 0) > 1:
        return "pruning the adapter's ranks would break BD-LoRA's blocks (one per GPU); turn one of them off"
    if method_params.get("init") == "mica":
        return "pruning the adapter's ranks needs both factors to train, and MiCA freezes one; choose another start"
    if method_params.get("init") in BASE_MOVING_INITS:
        # their ranks hold parts of the base weights (taken out of it at the start): a cut would drop them, and
        # peft's reload would take out another share at each layer's smaller rank
        return (
            "pruning the adapter's ranks does not work with the PiSSA, OLoRA, LoRA-GA or CorDA start, whose ranks carry "
            "parts of the base weights; choose the default start or turn pruning off"
        )
    return None


FIRST_CUT = 2  # step 1's importance is zero everywhere: LoRA's B starts at zero, so neither factor has |w x grad|


def prune_step(share_of_steps: float, total_steps: int, steps_per_epoch: int) -> int | None:
    """The step after which the ranks are cut: share_of_steps of the run, within the first epoch (so every
    evaluation, and the best weights kept, sees the pruned adapter), and not before step 2. None when the first
    epoch has too few steps for that."""
    if steps_per_epoch < FIRST_CUT:
        return None
    return max(FIRST_CUT, min(round(share_of_steps * total_steps), steps_per_epoch))


def lora_layers(model) -> dict:
    """{module name relative to the wrapped model (as peft's rank_pattern reads it): LoRA layer}."""
    from peft.tuners.lora import LoraLayer

    inner = model.base_model.model
    return {
        name: module
        for name, module in inner.named_modules()
        if isinstance(module, LoraLayer) and ADAPTER in getattr(module, "lora_A", {})
    }


class RankPruner:
    """Sums importance through optimizer step hooks and cuts the ranks after step `at_step` (see the module)."""

    def __init__(self, run, share: float, at_step: int, saved: dict | None = None, step: int = 0):
        """saved, step: a checkpoint's pruning state and step, when the run resumes from one."""
        import torch

        self.run, self.share, self.at_step = run, share, at_step
        self.layers = lora_layers(run.model)
        state = dict(saved or {})
        saved = state.get("importance") or {}
        self.importance = {
            name: torch.tensor(saved[name], dtype=torch.float64)
            if name in saved
            else torch.zeros(layer.r[ADAPTER], dtype=torch.float64)
            for name, layer in self.layers.items()
        }
        run.progress.pruning = {**state, "importance": {n: v.tolist() for n, v in self.importance.items()}}
        self.step = step
        self.times: list[float] = []
        self.handles = [
            run.optimizer.register_step_pre_hook(self._accumulate),
            run.optimizer.register_step_post_hook(self._after_step),
        ]

    @property
    def done(self) -> bool:
        return "kept" in (self.run.progress.pruning or {})

    def _accumulate(self, optimizer, args, kwargs) -> None:
        import torch

        if self.done:
            return
        scores = []
        for layer in self.layers.values():
            a, b = layer.lora_A[ADAPTER].weight, layer.lora_B[ADAPTER].weight
            score = torch.zeros(a.shape[0], dtype=torch.float64, device=a.device)
            if a.grad is not None:
                score += (a.detach() * a.grad).abs().sum(dim=1).double()
            if b.grad is not None:
                score += (b.detach() * b.grad).abs().sum(dim=0).double()
            scores.append(score)
        flat = torch.cat(scores).cpu().split([len(v) for v in self.importance.values()])  # one device sync a step
        for total, score in zip(self.importance.values(), flat):
            total += score
        self.run.progress.pruning["importance"] = {n: v.tolist() for n, v in self.importance.items()}

    def _after_step(self, optimizer, args, kwargs) -> None:
        self.step += 1
        self.times.append(time.monotonic())
        if not self.done and self.step >= self.at_step:
            self._cut()

    def _cut(self) -> None:
        ranks = [(float(score), name, index) for name, v in self.importance.items() for index, score in enumerate(v)]
        left = {name: len(v) for name, v in self.importance.items()}
        dropped: dict[str, set[int]] = {name: set() for name in left}
        to_drop = int(self.share * len(ranks))
        for _, name, index in sorted(ranks):
            if to_drop == 0:
                break
            if left[name] > 1:  # every layer keeps at least its most important rank
                dropped[name].add(index)
                left[name] -= 1
                to_drop -= 1
        kept = {name: [i for i in range(len(v)) if i not in dropped[name]] for name, v in self.importance.items()}
        before = sum(len(v) for v in self.importance.values())
        trainable_before = _trainable(self.run.model)
        apply_kept(self.run.model, kept, self.run.optimizer)
        self.run.progress.pruning.update(
            kept=kept,
            at_step=self.step,
            ranks_before=before,
            ranks_after=sum(len(v) for v in kept.values()),
            trainable_before=trainable_before,
            trainable_after=_trainable(self.run.model),
            seconds_per_step_before=median_gap(self.times),
        )
        self.times = self.times[-1:]  # the next gaps are the pruned adapter's

    def report(self) -> dict | None:
        """The report's "pruning" section, or None when the run ended before the cut."""
        state = dict(self.run.progress.pruning or {})
        if "kept" not in state:
            return None
        after = median_gap(self.times)
        state["seconds_per_step_after"] = after
        before = state.get("seconds_per_step_before")
        state["step_time_saved"] = 1 - after / before if before and after else None
        state["share"] = self.share
        state["ranks"] = {name: len(kept) for name, kept in state.pop("kept").items()}
        state.pop("importance", None)
        return state

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def apply_kept(model, kept: dict[str, list[int]], optimizer=None) -> None:
    """Cut each LoRA layer to the ranks in kept (indices into its current ranks), its optimizer moments with it
    (a moment whose shape does not follow the rank, such as GaLore's projected one, starts again), and record
    the new ranks and alphas in the peft config so that peft reloads the same shapes and scaling."""
    import math

    import torch

    layers = lora_layers(model)
    config = model.peft_config[ADAPTER]
    rank_pattern, alpha_pattern = dict(config.rank_pattern or {}), dict(config.alpha_pattern or {})
    for name, indices in kept.items():
        layer = layers[name]
        a_module, b_module = layer.lora_A[ADAPTER], layer.lora_B[ADAPTER]
        r = len(indices)
        for parameter, dim in ((a_module.weight, 0), (b_module.weight, 1)):
            index = torch.tensor(indices, dtype=torch.long, device=parameter.device)
            cut_state(optimizer, parameter, index, dim)
            parameter.data = parameter.data.index_select(dim, index).contiguous()
            parameter.grad = None
        a_module.out_features, b_module.in_features = r, r
        scaling = layer.scaling[ADAPTER]
        alpha = scaling * (math.sqrt(r) if config.use_rslora else r)
        layer.r[ADAPTER], layer.lora_alpha[ADAPTER] = r, alpha
        key = re.escape(name)
        rank_pattern[key], alpha_pattern[key] = r, alpha
    config.rank_pattern, config.alpha_pattern = rank_pattern, alpha_pattern


def cut_state(optimizer, parameter, index, dim: int) -> None:
    if optimizer is None or parameter not in optimizer.state:
        return
    state = optimizer.state[parameter]
    if any(getattr(v, "shape", None) not in (None, parameter.shape) and getattr(v, "ndim", 0) for v in state.values()):
        optimizer.state.pop(parameter)  # moments in another shape (GaLore's projection): they start again
        return
    for key, value in list(state.items()):
        if getattr(value, "shape", None) == parameter.shape:
            state[key] = value.index_select(dim, index).contiguous()


def _trainable(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def median_gap(times: list[float]) -> float | None:
    gaps = [later - earlier for earlier, later in zip(times, times[1:])]
    return round(statistics.median(gaps), 6) if gaps else None
