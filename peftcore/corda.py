"""CorDA (Yang et al., 2024, arxiv.org/abs/2406.05223): LoRA started from a context-oriented decomposition of each
adapted weight. The covariance C of the layer's inputs on the training rows shapes the SVD of W·C; the instruction-
previewed mode (IPM, init "corda") starts the adapter from its r largest components, the ones the task's data uses
most, while the knowledge-preserved mode (KPM, init "corda_kpm") starts it from the r smallest and leaves the large
ones, which hold what the model already knows, in the frozen weight. Either way B·A is taken out of the base
weight, so the model starts unchanged.

peft's preprocess_corda runs on the model before the adapter is built (and imports attrs, which the studio does not
otherwise need); the studio builds first, so the covariance is gathered here through hooks on each LoRA layer's
base layer, row by row over real tokens only (as peft's one-row batches do, padding left out), and peft's
LoraLayer.corda_init then sets the start from the same eigens peft's collect_eigens_for_layer computes. The saved
adapter is converted like LoRA-GA's (lora_ga.convert_saved) so it loads on the untouched base model; a resume
gathers the same covariance from the same rows and rebuilds the same base weights first.
"""

from __future__ import annotations

from types import SimpleNamespace

ADAPTER = "default"
MODES = {"corda": "ipm", "corda_kpm": "kpm"}


def covariances(model, batches: list[dict]) -> dict:
    """{LoRA layer: the mean over rows of X^T X of its base layer's input}, X a row's real tokens scaled by their
    largest value (peft's calib_cov_distribution), with the adapter off and dropout off."""
    import torch
    from peft.tuners.lora import LoraLayer

    layers = [m for m in model.modules() if isinstance(m, LoraLayer) and ADAPTER in m.lora_A]
    for layer in layers:
        if hasattr(layer.get_base_layer().weight, "quant_state"):
            raise ValueError("CorDA needs the base weights in full precision; turn 4-bit loading off")
    sums: dict = {}
    counts: dict = {}
    mask: list = [None]

    def hook_for(layer):
        def hook(module, inputs, output):
            x = inputs[0].detach().float()
            rows = x if x.dim() == 3 else x.unsqueeze(0)
            for i, row in enumerate(rows):
                if mask[0] is not None and mask[0].shape[:2] == rows.shape[:2]:
                    row = row[mask[0][i].bool()]
                scale = row.max().abs()
                row = row / scale if scale > 0 else row
                sums[layer] = sums.get(layer, 0) + row.T @ row
                counts[layer] = counts.get(layer, 0) + 1

        return hook

    handles = [layer.get_base_layer().register_forward_hook(hook_for(layer)) for layer in layers]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), model.disable_adapter():
            for batch in batches:
                mask[0] = batch.get("attention_mask")
                model(**batch)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return {layer: sums[layer] / counts[layer] for layer in layers if layer in sums}


def eigens(weight, covariance, rank: int, mode: str) -> SimpleNamespace:
    """The r components of W·C that start the adapter, as peft's collect_eigens_for_layer and crop_corda_eigens
    compute them: C damped until it inverts cleanly, W·C = U S Vh, V = (Vh C^-1)^T; IPM keeps the largest, KPM the
    smallest. `weight` is in (out, in) layout."""
    import torch

    w = weight.float()
    diagonal_mean = torch.mean(torch.diag(covariance))
    eye = torch.eye(covariance.size(0), dtype=covariance.dtype, device=covariance.device)
    damp = 0.01
    while True:
        fixed = covariance + eye * diagonal_mean * damp
        inverse = torch.linalg.inv(fixed)
        if torch.dist(fixed @ inverse, eye).item() < 0.05:
            break
        damp *= 2
    u, s, vh = torch.linalg.svd(w @ fixed, full_matrices=False)
    v = (vh @ inverse).T
    keep = slice(None, rank) if mode == "ipm" else slice(-rank, None)
    return SimpleNamespace(U_WC=u[:, keep].contiguous(), S_WC=s[keep].clone(), V_WC=v[:, keep].contiguous())


def initialise(model, batches: list[dict], init: str) -> None:
    """Set CorDA's start on every LoRA layer from the rows' covariance, and keep the starting factors
    (model.peftcore_start_factors, peft's saved names) for the conversion at save."""
    from peft import get_peft_model_state_dict

    mode = MODES[init]
    for layer, covariance in covariances(model, batches).items():
        base = layer.get_base_layer()
        weight = base.weight.data
        weight = weight.T if getattr(layer, "fan_in_fan_out", False) else weight  # GPT-2's Conv1D: (in, out)
        base.eigens = eigens(weight, covariance, layer.r[ADAPTER], mode)
        layer.corda_init(ADAPTER, "corda")
    start = get_peft_model_state_dict(model, adapter_name=ADAPTER)
    model.peftcore_start_factors = {k: v.detach().clone() for k, v in start.items() if ".lora_" in k}
