"""LoRA-GA (Wang et al., 2024, arxiv.org/abs/2407.05000): LoRA started so that its first steps follow full
fine-tuning's gradient. The gradient of the loss with respect to each adapted weight is estimated on a few training
batches (the adapter off, dropout off); peft's LoraLayer.lora_ga_init then sets A and B from its top singular
vectors and takes B·A out of the base weight, so the model starts unchanged.

peft's own preprocess_loraga runs on the model before the adapter is built; the studio builds first (the form's
count, the placement, the head), so the gradients are gathered here on the built model instead, through hooks on
each LoRA layer's base layer. Because the base weights change, the saved adapter is converted to a plain LoRA of
twice the rank relative to the untouched weights (convert_saved), so it loads on the original base model
anywhere. On a resume the same estimate is made again (the same batches, the same
random state), which rebuilds the same base weights before the checkpoint's adapter is loaded.
"""

from __future__ import annotations

from pathlib import Path

ADAPTER = "default"
# LoRA's starts that take part of each base weight into the adapter (PiSSA, OLoRA, LoRA-GA, CorDA): what cannot
# be activated per token, pruned by rank or added to another adapter
BASE_MOVING_INITS = ("pissa", "olora", "lora_ga", "corda", "corda_kpm")


def estimate(model, batches: list[dict], loss) -> dict:
    """{LoRA layer: the mean over `batches` of dLoss/dW of its base weight}, with the adapter off and dropout off
    (loss(model, batch) -> a scalar)."""
    from peft.tuners.lora import LoraLayer

    layers = [m for m in model.modules() if isinstance(m, LoraLayer) and ADAPTER in m.lora_A]
    for layer in layers:
        if hasattr(layer.get_base_layer().weight, "quant_state"):
            raise ValueError("LoRA-GA needs the base weights in full precision; turn 4-bit loading off")
    grads: dict = {}
    handles = [layer.get_base_layer().register_forward_hook(_gradient_hook(layer, grads)) for layer in layers]
    was_training = model.training
    model.eval()  # no dropout: the same estimate on a resume
    try:
        with model.disable_adapter():
            for batch in batches:
                loss(model, batch).backward()
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
        model.zero_grad(set_to_none=True)  # the head's gradients from the estimate must not reach step 1
    return {layer: grads[layer] / max(len(batches), 1) for layer in layers if layer in grads}


def initialise(model, batches: list[dict], loss) -> None:
    """Set LoRA-GA's start from the gradient estimate, and keep the starting factors (model.peftcore_start_factors,
    peft's saved names) for the conversion at save."""
    from peft import get_peft_model_state_dict

    config = model.peft_config[ADAPTER].lora_ga_config
    for layer, grad in estimate(model, batches, loss).items():
        layer.get_base_layer()._peft_loraga_grad = grad
        layer.lora_ga_init(ADAPTER, config)
    start = get_peft_model_state_dict(model, adapter_name=ADAPTER)
    model.peftcore_start_factors = {k: v.detach().clone() for k, v in start.items() if ".lora_" in k}


def convert_saved(folder: Path, start: dict) -> None:
    """Rewrite a saved LoRA-GA (or CorDA) adapter as a plain LoRA relative to the untouched base weights: the change it makes
    is B·A - B0·A0 = [B | -B0]·[A ; A0], a LoRA of twice the rank (alpha doubled with it, so the scale holds).
    peft's own conversion (save_pretrained's path_initial_model_for_weight_conversion) drops every other tensor,
    the classifier head among them, so it is done here."""
    import json

    from safetensors.torch import load_file, save_file

    weights = folder / "adapter_model.safetensors"
    tensors = load_file(str(weights))
    for key, value in list(tensors.items()):
        if ".lora_A." in key:
            tensors[key] = _cat([value, start[key].to(value)], 0)
        elif ".lora_B." in key:
            tensors[key] = _cat([value, -start[key].to(value)], 1)
    save_file(tensors, str(weights), metadata={"format": "pt"})
    config_path = folder / "adapter_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["r"] *= 2
    config["lora_alpha"] *= 2**0.5 if config.get("use_rslora") else 2
    config.update(init_lora_weights=True, lora_ga_config=None)
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _cat(parts, dim: int):
    import torch

    return torch.cat(parts, dim=dim).contiguous()


def _gradient_hook(layer, grads: dict):
    """A forward hook on the base layer that adds dLoss/dW = grad_output^T x (summed over batch and tokens), in
    the weight's own layout (GPT-2's Conv1D stores it transposed)."""
    import torch

    transposed = bool(getattr(layer, "fan_in_fan_out", False))

    def hook(module, inputs, output):
        x = inputs[0].detach()
        if not output.requires_grad:
            output.requires_grad_(True)  # the base model is frozen: make the graph reach this layer

        def add(grad_output):
            g = torch.einsum("...o,...i->oi", grad_output.float(), x.float())
            g = g.T if transposed else g
            grads[layer] = grads[layer] + g if layer in grads else g

        output.register_hook(add)
        return output

    return hook
