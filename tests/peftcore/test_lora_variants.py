"""LoRA's newer variants and starts (peftcore/methods/lora.py): VeLoRA keeps less of the adapter's input for the
backward pass than plain LoRA, MiCA trains only the down-projections (its up-projections are the weight's least
used directions), the orthogonal start changes the model from the first step, and variants peft cannot stack on
one layer are refused by name. (Each also trains, saves and reloads in tests/peftcore/test_method_matrix.py.)"""

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from peftcore.counting import count_on_meta
from peftcore.methods import get_method
from peftcore.methods._common import MethodBuildError
from peftcore.schema import validate_params

LORA = get_method("lora")
CONFIG = BertConfig(
    vocab_size=64, hidden_size=256, num_hidden_layers=1, num_attention_heads=4, intermediate_size=512, num_labels=2
)


def _lora(**params):
    torch.manual_seed(0)
    model = BertForSequenceClassification(CONFIG)
    clean, errors = validate_params(LORA.params, params)
    assert not errors
    return LORA.build(model, clean, "text-classification", new_modules=["classifier"])


def _saved_bytes(model) -> int:
    """Bytes of the activations autograd keeps for the backward pass (the weights themselves not counted)."""
    weights = {p.data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(tensor):
        if tensor.data_ptr() not in weights:
            seen[tensor.data_ptr()] = tensor.numel() * tensor.element_size()
        return tensor

    ids = torch.randint(0, 64, (8, 48))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model.train()(input_ids=ids).logits.sum().backward()
    return sum(seen.values())


def test_velora_keeps_less_for_the_backward_pass_than_plain_lora():
    plain, velora = _saved_bytes(_lora()), _saved_bytes(_lora(velora=True))
    # each adapted layer keeps 64 numbers per token instead of 256 or 512; the rest of the model keeps the same
    assert velora < plain * 0.85, (velora, plain)


def test_mica_trains_the_down_projections_only_and_starts_unchanged():
    model = _lora(init="mica")
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any(".lora_A." in n for n in trainable) and not any(".lora_B." in n for n in trainable)
    ids = torch.randint(0, 64, (2, 12))
    with torch.no_grad():
        adapted = model.eval()(input_ids=ids).logits
        with model.disable_adapter():
            off = model(input_ids=ids).logits
    torch.testing.assert_close(adapted, off)  # A starts at zero: the model starts as it was
    # the count shown before the run knows MiCA freezes one factor
    counted = count_on_meta(CONFIG, "lora", {"init": "mica"}, "text-classification")["trainable"]
    assert counted == sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_the_orthogonal_start_changes_the_model_from_the_first_step():
    model = _lora(init="orthogonal").eval()
    ids = torch.randint(0, 64, (2, 12))
    with torch.no_grad():
        adapted = model(input_ids=ids).logits
        with model.disable_adapter():
            off = model(input_ids=ids).logits
    assert (adapted - off).abs().max() > 0


@pytest.mark.parametrize(
    "params, says",
    [
        ({"velora": True, "use_dora": True}, "DoRA and VeLoRA cannot be combined"),
        ({"use_kasa": True, "use_dora": True}, "DoRA and KaSA cannot be combined"),
        ({"init": "mica", "use_dora": True}, "the MiCA start keeps its own layer variant; turn DoRA off"),
        ({"init": "orthogonal", "r": 7}, "the orthogonal start needs an even rank (got 7)"),
    ],
)
def test_what_peft_cannot_stack_is_refused_by_name(params, says):
    with pytest.raises(MethodBuildError, match=r"LoRA: " + says.replace("(", r"\(").replace(")", r"\)")):
        _lora(**params)


def test_bd_lora_keeps_one_factor_block_diagonal_per_layer_and_merges_exactly():
    model = _lora(bd_blocks=4, placement="both")
    layers = {name: module for name, module in model.named_modules() if hasattr(module, "lora_A")}
    row = next(m for n, m in layers.items() if n.endswith("attention.output.dense"))
    column = next(m for n, m in layers.items() if n.endswith("attention.self.query"))
    # a row-split layer's A and a column-split layer's B hold one block per GPU: a quarter of the weights
    assert row.lora_A["default"].weight.shape == (8, 256 // 4)
    assert column.lora_B["default"].weight.shape == (256, 8 // 4)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.normal_(0, 0.05)
    ids = torch.randint(0, 64, (2, 12))
    with torch.no_grad():
        adapted = model.eval()(input_ids=ids).logits
        merged = model.merge_and_unload()(input_ids=ids).logits
    torch.testing.assert_close(merged, adapted, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "params, says",
    [
        ({"bd_blocks": 3}, "the rank (8) must be a multiple of the BD-LoRA blocks (3)"),
        ({"bd_blocks": 2, "velora": True}, "VeLoRA and BD-LoRA cannot be combined"),
    ],
)
def test_bd_lora_settings_that_cannot_split_are_refused(params, says):
    with pytest.raises(MethodBuildError, match=r"LoRA: " + says.replace("(", r"\(").replace(")", r"\)")):
        _lora(**params)


def test_one_block_is_a_plain_lora_that_combines_with_dora():
    model = _lora(bd_blocks=1, use_dora=True)
    assert any(".lora_magnitude_vector." in name for name, _ in model.named_parameters())


def test_bd_lora_adapters_are_not_combined_and_not_pruned():
    from pathlib import Path

    from peftcore.combine import Parent, combine_refusal
    from peftcore.light_peft import pruning_problem

    config = {"peft_type": "LORA", "r": 8, "target_modules": ["query"], "use_bdlora": {"nblocks": 2}}
    parents = [Parent(Path(name), config, {"task": "text-classification"}, ["0", "1"]) for name in ("a", "b")]
    assert "a is a BD-LoRA adapter" in combine_refusal(parents, [1.0, 1.0], "sum", None)
    assert "BD-LoRA's blocks" in pruning_problem(LORA, {"bd_blocks": 2}, {"prune_ranks": 0.5})
    assert pruning_problem(LORA, {"bd_blocks": 0}, {"prune_ranks": 0.5}) is None
