"""Light-PEFT's pruning of the base model (peftcore/base_pruning.py): cutting heads and channels computes exactly
what zeroing their outputs does, a merge puts them back as zeros with the base's shapes, a run cuts the shares
asked for and saves an adapter that reloads (through the studio, the model card's code and merged) with
identical logits, a checkpoint before or after the cut resumes exactly, and what it cannot do is refused."""

import json

import pytest
import torch

from peftcore import base_pruning
from peftcore.adapters import load_adapter
from peftcore.combine import combine_refusal, read_parent
from peftcore.errors import BAD_PARAMS, TrainingError
from peftcore.events import ListSink
from peftcore.methods import get_method
from peftcore.schema import validate_params
from peftcore.tasks import load_tokenizer
from peftcore.tasks.text_classification import collate, encode, load_model
from peftcore.train import fit, run
from tests.peftcore.test_checkpoints import SMALL, assert_resumes_exactly
from tests.tiny_models import sentiment_rows

from .conftest import make_spec

PLAN = {"heads": {"bert.encoder.layer.0": [1], "bert.encoder.layer.1": [0]}, "ffn": {}}


def _batch(tiny_bert):
    tokenizer = load_tokenizer(tiny_bert)
    return collate(encode(tokenizer, [t for t, _ in sentiment_rows()[:6]], 32), tokenizer.pad_token_id)


def _lora(tiny_bert):
    clean, errors = validate_params(get_method("lora").params, {"placement": "both"})
    assert not errors
    torch.manual_seed(0)
    model, new_modules = load_model(tiny_bert, ["0", "1"], load_tokenizer(tiny_bert).pad_token_id)
    model = get_method("lora").build(model, clean, "text-classification", new_modules=new_modules, total_steps=8)
    with torch.no_grad():  # a trained-looking adapter
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.5)
    return model.eval()


def _plan(model):
    found = base_pruning.blocks(model)
    channels = next(iter(found.values())).channels
    return {**PLAN, "ffn": {block: list(range(0, channels, 3)) for block in found}}


def assert_cut_is_zeroing(model, plan, batch) -> None:
    """Cut the model by the plan, asserting that its logits change and equal the whole model's with the cut heads'
    and channels' outputs zeroed (by hooks where the cut model reads them)."""
    handles = []
    for block, parts in base_pruning.blocks(model).items():
        for kept, module, size, repeat in (
            (plan["heads"][block], parts.out, parts.heads, parts.head_size),
            (plan["ffn"][block], parts.ffn_out, parts.channels, 1),
        ):
            mask = torch.zeros(size)
            mask[kept] = 1
            handles.append(module.register_forward_pre_hook(base_pruning._masking(mask, repeat)))
    with torch.no_grad():
        zeroed = model(**batch).logits
        for handle in handles:
            handle.remove()
        whole = model(**batch).logits
        base_pruning.apply_plan(model, plan)
        cut = model(**batch).logits
    assert not torch.allclose(whole, zeroed, atol=1e-3)  # the cut changes the model
    assert torch.allclose(zeroed, cut, atol=1e-5)


def test_cutting_heads_and_channels_is_exactly_zeroing_their_outputs(tiny_bert):
    model, batch = _lora(tiny_bert), _batch(tiny_bert)
    plan = _plan(model)
    assert_cut_is_zeroing(model, plan, batch)
    parts = base_pruning.blocks(model)["bert.encoder.layer.0"]
    attention, attention_out, ffn_in = parts.attention, parts.out, parts.ffn_in[0]
    assert attention.num_attention_heads == 1 and attention.all_head_size == 16  # for layouts that reshape by it
    assert attention.query.lora_B["default"].weight.shape[0] == attention.attention_head_size == 16
    assert attention_out.lora_A["default"].weight.shape[1] == 16
    assert (
        ffn_in.base_layer.weight.shape[0]
        == ffn_in.lora_B["default"].weight.shape[0]
        == len(plan["ffn"]["bert.encoder.layer.0"])
    )


def test_a_merged_cut_model_has_the_base_shapes_and_computes_the_same(tiny_bert):
    model, batch = _lora(tiny_bert), _batch(tiny_bert)
    plan = _plan(model)
    base_pruning.apply_plan(model, plan)
    with torch.no_grad():
        cut = model(**batch).logits
        merged = model.merge_and_unload()
        # the sizes as plans written before decoders were cut hold them (no kv_heads)
        base_pruning.expand(merged, plan, {"head_size": 16, "heads": 2, "channels": 64})
        assert torch.allclose(merged(**batch).logits, cut, atol=1e-5)
    fresh, _ = load_model(tiny_bert, ["0", "1"], 0)
    assert {n: p.shape for n, p in merged.state_dict().items()} == {n: p.shape for n, p in fresh.state_dict().items()}


def test_a_run_cuts_the_shares_and_every_loader_gets_the_same_model(tiny_bert, sentiment_tsv, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    params = {**SMALL, "prune_heads": 0.5, "prune_channels": 0.5, "prune_after": 0.2}
    result = fit(make_spec(tiny_bert, sentiment_tsv, tmp_path / "out", params=params), ListSink())
    report = result.done["report"]
    cut = report["base_pruning"]
    assert cut["at_step"] == 2 and cut["share_heads"] == cut["share_channels"] == 0.5
    assert cut["before"] == {"heads": 4, "channels": 128} and cut["after"] == {"heads": 2, "channels": 64}
    assert cut["total_after"] < cut["total_before"] and cut["seconds_per_step_after"] > 0
    assert report["trainable_params"] == sum(p.numel() for p in result.model.parameters() if p.requires_grad)
    plan = json.loads((result.adapter_dir / base_pruning.PLAN_FILE).read_text())
    assert plan["sizes"] == {"head_size": 16, "heads": 2, "kv_heads": 2, "channels": 64}
    assert all(len(kept) == 1 for kept in plan["heads"].values()) and all(len(k) == 32 for k in plan["ffn"].values())

    batch = _batch(tiny_bert)
    with torch.no_grad():
        trained = result.model.eval()(**batch).logits
        studio = load_adapter(load_model(tiny_bert, ["0", "1"], 0)[0], result.adapter_dir).eval()
        assert torch.allclose(studio(**batch).logits, trained, atol=1e-5)
        # the model card's code: the plan applied to a plain base, then plain peft
        card = (result.adapter_dir / "README.md").read_text()
        assert all(line in card for line in base_pruning.LOAD_LINES)
        model = AutoModelForSequenceClassification.from_pretrained(str(tiny_bert), num_labels=2)
        folder = str(result.adapter_dir)
        base_pruning.apply_plan(model, base_pruning.read_plan(folder))
        model = PeftModel.from_pretrained(model, folder).eval()
        assert torch.allclose(model(**batch).logits, trained, atol=1e-5)
        # merged (what a stacked job trains on): the base's shapes, so it saves and loads in plain transformers
        merged = load_adapter(load_model(tiny_bert, ["0", "1"], 0)[0], result.adapter_dir, merge=True)
        merged.save_pretrained(str(tmp_path / "merged"))
        merged = AutoModelForSequenceClassification.from_pretrained(str(tmp_path / "merged")).eval()
        assert torch.allclose(merged(**batch).logits, trained, atol=1e-5)


@pytest.mark.parametrize("prune_after", [0.1, 0.34], ids=["cut-at-the-first-checkpoint", "cut-between-them"])
def test_a_run_that_prunes_its_base_resumes_exactly(tiny_bert, sentiment_tsv, tmp_path, prune_after):
    # 9 steps, 3 an epoch, checkpoints at 2 and 6; with rank pruning too, both cuts at the same step
    def make(out, **overrides):
        params = {**SMALL, "prune_heads": 0.5, "prune_channels": 0.25, "prune_ranks": 0.5, "prune_after": prune_after}
        return make_spec(tiny_bert, sentiment_tsv, out, params=params, **overrides)

    reference = assert_resumes_exactly(make, tmp_path)
    report = reference.done["report"]
    assert report["base_pruning"]["at_step"] == report["pruning"]["at_step"] == (2 if prune_after == 0.1 else 3)
    assert report["base_pruning"]["after"] == {"heads": 2, "channels": 96}


@pytest.mark.parametrize(
    "shape, method, method_params, more, said",
    [
        ("bert", "ia3", {}, {}, "works with LoRA, whose factors are cut with them; (IA)³ is not"),
        ("bert", "lora", {"use_dora": True}, {}, "does not work with DoRA"),
        ("bert", "lora", {"init": "olora"}, {}, "does not work with the PiSSA, OLoRA, LoRA-GA or CorDA start"),
        ("bert", "lora", {}, {"quantize": "4bit"}, "cannot cut a 4-bit (QLoRA) base's packed weights"),
        (
            "gpt2",
            "lora",
            {},
            {},
            "and Llama-style decoders (gemma, gemma2, gemma3_text, llama, mistral, qwen2, qwen3); GPT2",
        ),
    ],
)
def test_what_base_pruning_cannot_do_is_refused_with_the_reason(
    tiny_bert, tiny_shape, sentiment_tsv, tmp_path, shape, method, method_params, more, said
):
    folder = tiny_bert if shape == "bert" else tiny_shape(shape)
    params = {**SMALL, "epochs": 1, "prune_channels": 0.5, **more}
    spec = make_spec(folder, sentiment_tsv, tmp_path / "out", method=method, method_params=method_params, params=params)
    with pytest.raises(TrainingError) as raised:
        run(spec, ListSink())
    assert raised.value.kind == BAD_PARAMS and said in raised.value.message


def test_an_adapter_on_a_cut_base_trains_on_and_carries_its_cut(tiny_bert, sentiment_tsv, tmp_path):
    params = {**SMALL, "epochs": 1, "prune_heads": 0.5, "prune_channels": 0.5, "prune_after": 0.5}
    first = fit(make_spec(tiny_bert, sentiment_tsv, tmp_path / "first", params=params), ListSink())
    start = {"adapter_dir": str(first.adapter_dir), "mode": "continue"}
    plain = {**SMALL, "epochs": 1}
    go_on = fit(make_spec(tiny_bert, sentiment_tsv, tmp_path / "on", params=plain, start_from=start), ListSink())
    assert base_pruning.read_plan(go_on.adapter_dir) == base_pruning.read_plan(first.adapter_dir)
    # its factors fit the cut model only: no sum with adapters of the whole one (peftcore combine refuses it)
    parents = [read_parent(go_on.adapter_dir), read_parent(go_on.adapter_dir)]
    assert "heads and channels Light-PEFT cut" in combine_refusal(parents, [1.0, 1.0], "sum", None)
    batch = _batch(tiny_bert)
    with torch.no_grad():
        studio = load_adapter(load_model(tiny_bert, ["0", "1"], 0)[0], go_on.adapter_dir).eval()
        assert torch.allclose(studio(**batch).logits, go_on.model.eval()(**batch).logits, atol=1e-5)
    # stacked: the cut adapter merged (the base's shapes again), a new adapter on top, which needs no plan
    stacked = fit(
        make_spec(tiny_bert, sentiment_tsv, tmp_path / "stack", params=plain, start_from={**start, "mode": "stack"}),
        ListSink(),
    )
    assert base_pruning.read_plan(stacked.adapter_dir) is None
    assert base_pruning.read_plan(stacked.adapter_dir / "base_adapter") is not None
    with torch.no_grad():
        studio = load_adapter(load_model(tiny_bert, ["0", "1"], 0)[0], stacked.adapter_dir).eval()
        assert torch.allclose(studio(**batch).logits, stacked.model.eval()(**batch).logits, atol=1e-5)
    again = make_spec(tiny_bert, sentiment_tsv, tmp_path / "again", params=params, start_from=start)
    with pytest.raises(TrainingError, match="works on a run that starts from the base model"):
        run(again, ListSink())
