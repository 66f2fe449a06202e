"""The torch pieces of the methods written in peftcore. Imported only inside build(), never by the registry."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

RED_SCALE, RED_BIAS = "red_scale", "red_bias"


def _red_hook(module, inputs, output):
    return output * module.red_scale + module.red_bias


def add_red_edit(module: nn.Module) -> int:
    """Give `module` a learned scale (init 1) and bias (init 0) over its output features: out * scale + bias.
    Kept on the module itself so the trained tensors are saved under the module's own name."""
    weight = module.weight
    size = getattr(module, "out_features", None) or getattr(module, "nf", None)  # nn.Linear or GPT-2's Conv1D
    if size is None:
        raise TypeError(f"cannot edit the output of a {type(module).__name__}")
    module.register_parameter(RED_SCALE, nn.Parameter(torch.ones(size, device=weight.device, dtype=weight.dtype)))
    module.register_parameter(RED_BIAS, nn.Parameter(torch.zeros(size, device=weight.device, dtype=weight.dtype)))
    module.register_forward_hook(_red_hook)
    return size


def freeze_all_but(model: nn.Module, predicate, new_modules: Sequence[str] = ()) -> int:
    """Train exactly the parameters whose name satisfies predicate, plus the newly initialised modules (the
    task head); returns how many parameter tensors the predicate selected."""
    heads = tuple(f"{name}." for name in new_modules)
    selected = 0
    for name, parameter in model.named_parameters():
        chosen = bool(predicate(name))
        selected += chosen
        parameter.requires_grad_(chosen or name.startswith(heads))
    return selected


def _output_size(module: nn.Module) -> int:
    """Output features of nn.Linear, GPT-2's Conv1D (nf) or an nn.Embedding (embedding_dim)."""
    size = (
        getattr(module, "out_features", None) or getattr(module, "nf", None) or getattr(module, "embedding_dim", None)
    )
    if size is None:
        raise TypeError(f"cannot adapt the output of a {type(module).__name__}")
    return size


def _input_size(module: nn.Module) -> int:
    """Input features of nn.Linear or GPT-2's Conv1D (whose weight is stored in x out)."""
    size = getattr(module, "in_features", None)
    if size is None and getattr(module, "nf", None) is not None:
        size = module.weight.shape[0]
    if size is None:
        raise TypeError(f"cannot select input features of a {type(module).__name__}")
    return size


ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "swish": nn.SiLU, "none": nn.Identity}


class Bottleneck(nn.Module):
    """x + up(act(down(x))), with up initialised to zero: the adapted model starts as the base model."""

    def __init__(self, size: int, width: int, activation: str, bias: bool, like: torch.Tensor):
        super().__init__()
        options = {"device": like.device, "dtype": like.dtype}
        self.down = nn.Linear(size, width, bias=bias, **options)
        self.act = ACTIVATIONS[activation]()
        self.up = nn.Linear(width, size, bias=bias, **options)
        nn.init.zeros_(self.up.weight)
        if bias:
            nn.init.zeros_(self.up.bias)

    def forward(self, x):
        return x + self.up(self.act(self.down(x)))


ADALINK, BOTTLENECK = "adalink", "bottleneck_adapter"


def _adalink_hook(module, inputs, output):
    return module.adalink(output)


def _bottleneck_hook(module, inputs, output):
    return module.bottleneck_adapter(output)


def add_adalink(model: nn.Module, rank: int) -> int:
    """A low-rank residual x + U(D x) on the input embeddings' output (AdaLink: no biases, no nonlinearity).
    One adapter serves every embedding module sharing the input embedding's weight (T5's encoder and decoder
    read the shared table through their own embed_tokens modules); it is saved once, under the first name."""
    embedding = model.get_input_embeddings()
    size = _output_size(embedding)
    adapter = Bottleneck(size, rank, "none", bias=False, like=embedding.weight)
    users = [m for m in model.modules() if isinstance(m, nn.Embedding) and m.weight is embedding.weight]
    for module in users or [embedding]:
        module.add_module(ADALINK, adapter)
        module.register_forward_hook(_adalink_hook)
    return 2 * size * rank


def add_bottleneck(module: nn.Module, reduction_factor: int, activation: str) -> int:
    """A bottleneck adapter (down, nonlinearity, up, residual) on the output of a sub-layer's output projection."""
    size = _output_size(module)
    width = max(1, size // reduction_factor)
    module.add_module(BOTTLENECK, Bottleneck(size, width, activation, bias=True, like=module.weight))
    module.register_forward_hook(_bottleneck_hook)
    return 2 * size * width + size + width


S2FT_DELTA, S2FT_INDEX = "s2ft_delta", "peftcore_s2ft_index"  # adapters.save_native keeps "peftcore_" buffers


def _s2ft_hook(module, inputs, output):
    selected = inputs[0].index_select(-1, getattr(module, S2FT_INDEX))
    return output + nn.functional.linear(selected, getattr(module, S2FT_DELTA))


def add_s2ft(module: nn.Module, columns: Sequence[int]) -> int:
    """Train the weights that read the chosen input features (the selected heads' or FFN channels' slice of
    the output / down projection) as a zero-initialised delta: W[:, columns] + delta, the base W untouched.
    Gradients equal those of training exactly those columns in place; merge_s2ft writes them in."""
    weight = module.weight
    size = _output_size(module)
    module.register_buffer(S2FT_INDEX, torch.tensor(sorted(columns), dtype=torch.long, device=weight.device))
    module.register_parameter(
        S2FT_DELTA, nn.Parameter(torch.zeros(size, len(columns), device=weight.device, dtype=weight.dtype))
    )
    module.register_forward_hook(_s2ft_hook)
    return size * len(columns)


def merge_s2ft(model: nn.Module) -> int:
    """Write every S2FT delta into its base weight (in place) and remove it; returns how many layers merged."""
    merged = 0
    for module in list(model.modules()):
        delta = module._parameters.get(S2FT_DELTA)
        if delta is None:
            continue
        index = getattr(module, S2FT_INDEX)
        with torch.no_grad():
            if getattr(module, "nf", None) is not None and not hasattr(module, "in_features"):  # Conv1D: in x out
                module.weight[index, :] += delta.t().to(module.weight.dtype)
            else:
                module.weight[:, index] += delta.to(module.weight.dtype)
        del module._parameters[S2FT_DELTA]
        del module._buffers[S2FT_INDEX]
        for key, hook in list(module._forward_hooks.items()):
            if hook is _s2ft_hook:
                del module._forward_hooks[key]
        merged += 1
    return merged
