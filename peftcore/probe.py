"""A classifier head that starts from a linear probe (LP-FT, Kumar et al. 2022, arxiv.org/abs/2202.10054): before
the first step, the new head's last linear layer is fitted by logistic regression on the frozen model's features
of the training rows, so fine-tuning starts from a head that already separates the labels instead of a random
one whose early gradients scramble the adapter. It matters most with little data, where a random head can end
as a one-class model.

The features are what the head's last linear layer is given (a forward hook), so any head shape works: BERT's one
linear layer, RoBERTa's dense + projection (the probe fits the projection). At most PROBE_ROWS training rows are
read (evenly spaced) to keep the probe to seconds; the regression is full-batch L-BFGS with an L2 penalty of
1/n (scikit-learn's C = 1). Off by default (`probe_head`): on SST-2 at 2,000 rows it measured 2 points below a
random head (docs/benchmarks.md, "Tuning the defaults").
"""

from __future__ import annotations

from collections.abc import Sequence

PROBE_ROWS = 4096
LBFGS_STEPS = 100


def head_linear(model, new_modules: Sequence[str], num_labels: int):
    """The trainable last linear layer of the new head (peft's trained copy under modules_to_save), or None."""
    import torch

    prefixes = tuple(f"{name}" for name in new_modules)
    found = None
    for name, module in model.named_modules():
        inside = any(f".{p}." in f".{name}." for p in prefixes)
        if (
            inside
            and isinstance(module, torch.nn.Linear)
            and module.out_features == num_labels
            and module.weight.requires_grad
        ):
            found = module
    return found


def probe_head(run, new_modules: Sequence[str]) -> dict | None:
    """Fit the head's last linear layer on the training rows' features; returns what it did (for the report) or
    None when there is no such layer."""
    import torch
    import torch.nn.functional as F

    from . import devices

    linear = head_linear(run.model, new_modules, len(run.labels))
    if linear is None:
        return None
    rows = len(run.train_features)
    picked = sorted({round(i * rows / PROBE_ROWS) for i in range(PROBE_ROWS)} if rows > PROBE_ROWS else range(rows))
    captured: list = []
    hook = linear.register_forward_hook(lambda module, args, output: captured.append(args[0].detach().float()))
    was_training = run.model.training
    run.model.eval()
    try:
        batch_size = run.runner.batch_size
        with torch.no_grad(), devices.autocast(run.device, run.precision):
            for start in range(0, len(picked), batch_size):
                batch = run.runner.collate([run.train_features[i] for i in picked[start : start + batch_size]])
                inputs = {k: v.to(run.device) for k, v in batch.items() if k != "labels"}
                run.model(**inputs)
    finally:
        hook.remove()
        run.model.train(was_training)
    features = torch.cat([c.reshape(-1, c.shape[-1]) for c in captured]).cpu()
    targets = torch.tensor([run.train_features[i]["target"] for i in picked], dtype=torch.long)
    if len(features) != len(targets):  # a head that reads more than one vector per row: leave it as it is
        return None
    weight = torch.zeros(len(run.labels), features.shape[1], requires_grad=True)
    bias = torch.zeros(len(run.labels), requires_grad=True)
    penalty = 1.0 / len(targets)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=LBFGS_STEPS, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(features @ weight.T + bias, targets) + 0.5 * penalty * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        accuracy = float(((features @ weight.T + bias).argmax(-1) == targets).float().mean())
        linear.weight.copy_(weight.to(linear.weight.dtype))
        if linear.bias is not None:
            linear.bias.copy_(bias.to(linear.bias.dtype))
    return {"rows": len(targets), "train_accuracy": round(accuracy, 4)}
