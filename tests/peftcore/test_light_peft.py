"""Light-PEFT's rank pruning (peftcore/light_peft.py): cutting ranks keeps the layer's function exactly as the
same ranks zeroed, a run cuts the share asked for (each layer keeps one) and saves an adapter plain peft reloads
with identical logits, a checkpoint before or after the cut resumes exactly, and other methods are refused."""

import json

import pytest
import torch

from peftcore.errors import BAD_PARAMS, TrainingError
from peftcore.events import ListSink
from peftcore.light_peft import apply_kept, lora_layers, prune_step
from peftcore.methods import get_method
from peftcore.schema import validate_params
from peftcore.tasks import load_tokenizer
from peftcore.tasks.text_classification import collate, encode, load_model
from peftcore.train import fit, run
from tests.peftcore.test_checkpoints import SMALL, assert_resumes_exactly
from tests.tiny_models import sentiment_rows

from .conftest import make_spec


def _lora(tiny_bert, **params):
    clean, errors = validate_params(get_method("lora").params, params)
    assert not errors
    tokenizer = load_tokenizer(tiny_bert)
    torch.manual_seed(0)
    model, new_modules = load_model(tiny_bert, ["0", "1"], tokenizer.pad_token_id)
    model = get_method("lora").build(model, clean, "text-classification", new_modules=new_modules, total_steps=8)
    texts = [text for text, _ in sentiment_rows()[:6]]
    batch = collate(encode(tokenizer, texts, 32), tokenizer.pad_token_id)
    return model.eval(), batch


@pytest.mark.parametrize("params", [{}, {"use_rslora": True, "lora_alpha": 8}])
def test_cutting_ranks_is_exactly_zeroing_them(tiny_bert, params):
    model, batch = _lora(tiny_bert, **params)
    layers = lora_layers(model)
    with torch.no_grad():
        for layer in layers.values():  # a trained-looking adapter
            layer.lora_B["default"].weight.normal_(0, 0.5)
        kept = {name: [0, 2, 5] if i % 2 else [7] for i, name in enumerate(layers)}
        for name, layer in layers.items():
            dropped = [i for i in range(layer.r["default"]) if i not in kept[name]]
            layer.lora_A["default"].weight[dropped] = 0
        zeroed = model(**batch).logits
        apply_kept(model, kept)
        cut = model(**batch).logits
    assert torch.allclose(zeroed, cut, atol=1e-6)
    name = next(iter(layers))
    assert layers[name].lora_A["default"].weight.shape[0] == len(kept[name]) == layers[name].r["default"]
    config = model.peft_config["default"]
    assert len(config.rank_pattern) == len(layers) and set(config.rank_pattern.values()) == {1, 3}


def test_the_cut_lands_within_the_first_epoch():
    assert prune_step(0.1, 100, 25) == 10
    assert prune_step(0.1, 1000, 25) == 25  # never after the first evaluation
    assert prune_step(0.01, 20, 10) == 2  # step 1's importance is all zero (B starts at zero)
    assert prune_step(0.5, 10, 1) is None  # no second step before the first evaluation


def test_a_run_cuts_the_share_and_plain_peft_reloads_the_smaller_adapter(tiny_bert, sentiment_tsv, tmp_path):
    from peft import PeftModel

    params = {**SMALL, "prune_ranks": 0.5, "prune_after": 0.2}
    result = fit(make_spec(tiny_bert, sentiment_tsv, tmp_path / "out", params=params), ListSink())
    pruning = result.done["report"]["pruning"]
    assert pruning["at_step"] == 2 and pruning["share"] == 0.5
    assert pruning["ranks_after"] == pruning["ranks_before"] // 2 and min(pruning["ranks"].values()) >= 1
    assert pruning["trainable_after"] < pruning["trainable_before"]
    assert result.done["report"]["trainable_params"] == pruning["trainable_after"]  # what compare shows
    assert sum(p.numel() for p in result.model.parameters() if p.requires_grad) == pruning["trainable_after"]
    assert pruning["seconds_per_step_before"] > 0 and pruning["seconds_per_step_after"] > 0
    saved = json.loads((result.adapter_dir / "adapter_config.json").read_text())
    assert sorted(saved["rank_pattern"].values()) == sorted(pruning["ranks"].values())

    tokenizer = load_tokenizer(tiny_bert)
    base, _ = load_model(tiny_bert, ["0", "1"], tokenizer.pad_token_id)
    reloaded = PeftModel.from_pretrained(base, str(result.adapter_dir)).eval()
    batch = collate(encode(tokenizer, [t for t, _ in sentiment_rows()[:6]], 32), tokenizer.pad_token_id)
    with torch.no_grad():
        assert torch.allclose(reloaded(**batch).logits, result.model.eval()(**batch).logits, atol=1e-5)


@pytest.mark.parametrize("prune_after", [0.1, 0.34], ids=["cut-at-the-first-checkpoint", "cut-between-them"])
def test_a_pruned_run_resumes_exactly(tiny_bert, sentiment_tsv, tmp_path, prune_after):
    # 9 steps, 3 an epoch, checkpoints at 2 and 6: the cut comes at step 2 (in both) or 3 (between them)
    def make(out, **overrides):
        params = {**SMALL, "prune_ranks": 0.5, "prune_after": prune_after}
        return make_spec(tiny_bert, sentiment_tsv, out, params=params, **overrides)

    reference = assert_resumes_exactly(make, tmp_path)
    assert reference.done["report"]["pruning"]["at_step"] == (2 if prune_after == 0.1 else 3)


@pytest.mark.parametrize(
    "method, method_params, params, said",
    [
        ("ia3", {}, {}, "works with LoRA: (IA)³ has no ranks to cut"),
        ("lora", {"init": "pissa"}, {}, "does not work with the PiSSA, OLoRA, LoRA-GA or CorDA start"),
        ("lora", {}, {"batch_size": 16}, "needs at least 2 steps in the first epoch"),  # 11 rows: one step
    ],
)
def test_what_pruning_cannot_do_is_refused_with_the_reason(
    tiny_bert, sentiment_tsv, tmp_path, method, method_params, params, said
):
    spec = make_spec(
        tiny_bert,
        sentiment_tsv,
        tmp_path / "out",
        method=method,
        method_params=method_params,
        params={**SMALL, "prune_ranks": 0.5, **params},
    )
    with pytest.raises(TrainingError) as raised:
        run(spec, ListSink())
    assert raised.value.kind == BAD_PARAMS and said in raised.value.message
