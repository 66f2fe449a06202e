"""GaLore (Zhao et al., 2024, arxiv.org/abs/2403.03507): AdamW whose moments live in a low-rank projection of each
weight matrix's gradient, so full fine-tuning keeps about rank / min(m, n) of AdamW's optimiser memory for those
matrices. Every `update_gap` steps the projection is the top `rank` singular vectors of the current gradient (the
smaller side of the matrix); Adam runs on the projected gradient and its normalised update is projected back and
scaled by `scale`. Vectors (biases, norms) and matrices no larger than the rank get plain AdamW.

Natural GaLore (Das, 2024, arxiv.org/abs/2410.16029), a group's `history` > 0: before Adam, the projected
gradient is multiplied by the inverse of an empirical Fisher estimate from the last `history` projected gradients
of that matrix, F = damping I + (1/k) G^T G, through the Woodbury identity (a k x k solve, never a d x d one; see
natural_gradient). The history restarts when the projection changes (old projected gradients live in another
subspace). The damping is NATURAL_DAMPING times F's own scale, the mean squared entry of the history, so no
setting depends on the size of the gradients.

Written here rather than taken from galore-torch, the authors' package (its last release, 1.0, is from 2024, and
it imports bitsandbytes, a CUDA package, when imported at all). It follows that package's "std" projector and
AdamW step, moments kept across a projection change as there. Every state entry is a tensor or a number, so a
checkpoint's optimiser state resumes exactly.
"""

from __future__ import annotations

import math

import torch


def projects(parameter: torch.Tensor, rank: int) -> bool:
    """Whether GaLore projects this parameter: a 2-D matrix whose both sides exceed the rank."""
    return parameter.ndim == 2 and min(parameter.shape) > rank


class GaLoreAdamW(torch.optim.Optimizer):
    """AdamW with decoupled weight decay; parameter groups with a `rank` (and `scale`, `update_gap`: the training
    parameters galore_*, peftcore/training_params.py) are projected (see the module)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            rank = group.get("rank")
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad.float()
                state = self.state[p]
                state["step"] = state.get("step", 0) + 1
                step = state["step"]
                projected = rank is not None and projects(p, rank)
                left = projected and p.shape[0] < p.shape[1]  # project the smaller side
                if projected:
                    refresh = (step - 1) % group["update_gap"] == 0
                    if refresh:
                        state["projector"] = _projector(grad, rank, left)
                    projector = state["projector"]
                    grad = projector.T @ grad if left else grad @ projector
                    if group.get("history"):
                        grad = _natural(state, grad, group["history"], restart=refresh)
                if "exp_avg" not in state:
                    state["exp_avg"] = torch.zeros_like(grad)
                    state["exp_avg_sq"] = torch.zeros_like(grad)
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                # torch.optim.AdamW's arithmetic, in its order (decay first), so vectors step exactly as there
                if group["weight_decay"]:
                    p.mul_(1 - group["lr"] * group["weight_decay"])
                denominator = (exp_avg_sq.sqrt() / math.sqrt(1 - beta2**step)).add_(group["eps"])
                update = exp_avg / denominator
                if projected:
                    update = (projector @ update if left else update @ projector.T) * group["scale"]
                p.add_(update.to(p.dtype), alpha=-group["lr"] / (1 - beta1**step))
        return loss


def _natural(state: dict, grad: torch.Tensor, size: int, *, restart: bool) -> torch.Tensor:
    """Record the projected gradient in the matrix's history (a ring of `size`) and return its natural gradient."""
    flat = grad.flatten()
    if restart or "history" not in state:
        state["history"] = torch.zeros(size, flat.numel(), dtype=flat.dtype, device=flat.device)
        state["history_seen"] = 0
    state["history"][state["history_seen"] % size] = flat
    state["history_seen"] += 1
    recent = state["history"][: min(state["history_seen"], size)]
    return natural_gradient(flat, recent).view_as(grad)


# Measured on a small regression (tests/peftcore/test_galore.py's): at 1x the Fisher's mean diagonal the natural
# step learned slower than GaLore's (consecutive full-batch gradients agree, and a light damping then shrinks the
# very direction that descends); at 10x and 100x it learned faster. The paper leaves the value to the user.
NATURAL_DAMPING = 10.0


def natural_gradient(grad: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
    """(damping I + history^T history / k)^-1 grad, for a (k, d) history of gradients, by Woodbury:
    (grad - history^T (k damping I + history history^T)^-1 history grad) / damping, damping being
    NATURAL_DAMPING x the Fisher estimate's mean diagonal entry."""
    k = history.shape[0]
    damping = (NATURAL_DAMPING * history.square().mean()).clamp(min=torch.finfo(history.dtype).tiny)
    small = history @ history.T + k * damping * torch.eye(k, dtype=history.dtype, device=history.device)
    return (grad - history.T @ torch.linalg.solve(small, history @ grad)) / damping


def _projector(grad: torch.Tensor, rank: int, left: bool) -> torch.Tensor:
    """The top singular vectors of the gradient on its smaller side: (m, r) on the left, else (n, r)."""
    u, _, vh = torch.linalg.svd(grad, full_matrices=False)
    return u[:, :rank].contiguous() if left else vh[:rank].T.contiguous()
