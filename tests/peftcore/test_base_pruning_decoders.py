"""Light-PEFT's base pruning on Llama-style decoders (peftcore/base_pruning.py), here a tiny Gemma 3 with
grouped-query attention (4 query heads, 2 key/value heads, as the bundled 270M shares one key/value head among
4): a cut equals zeroing what it cuts, whole groups go, an SFT run cuts the shares asked for and its adapter
reloads (through the studio and merged into plain transformers) with identical logits, and DPO, whose reference
is the base model itself, is refused."""

import pytest
import torch

from peftcore import base_pruning
from peftcore.adapters import load_adapter
from peftcore.errors import BAD_PARAMS, TrainingError
from peftcore.events import ListSink
from peftcore.methods import get_method
from peftcore.schema import validate_params
from peftcore.train import fit, run
from tests.peftcore.test_base_pruning import assert_cut_is_zeroing
from tests.peftcore.test_checkpoints import SMALL, generation_spec
from tests.tiny_models import make_preference_file, make_review_answer_file, make_tiny_gemma3

HEADS, KV_HEADS, HEAD_SIZE, CHANNELS = 4, 2, 8, 64


@pytest.fixture(scope="module")
def gqa_gemma(tmp_path_factory):
    return make_tiny_gemma3(tmp_path_factory.mktemp("models") / "tiny-gqa-gemma3", heads=HEADS, kv_heads=KV_HEADS)


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    return make_review_answer_file(tmp_path_factory.mktemp("data") / "pairs.jsonl")


def _causal_lm(folder):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    return AutoModelForCausalLM.from_pretrained(str(folder))


def _batch():
    generator = torch.Generator().manual_seed(1)
    return {"input_ids": torch.randint(3, 60, (3, 12), generator=generator)}


def test_a_decoder_cut_cuts_whole_key_value_groups_and_is_exactly_zeroing_them(gqa_gemma):
    clean, errors = validate_params(get_method("lora").params, {"placement": "both"})
    assert not errors
    model = get_method("lora").build(_causal_lm(gqa_gemma), clean, "sft", new_modules=[], total_steps=8)
    with torch.no_grad():  # a trained-looking adapter
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.5)
    model.eval()
    found = base_pruning.blocks(model)
    assert len(found) == 2 and all((b.heads, b.group, b.head_size) == (HEADS, 2, HEAD_SIZE) for b in found.values())
    first, second = found
    plan = {"heads": {first: [2, 3], second: [0, 1]}, "ffn": {b: list(range(0, CHANNELS, 3)) for b in found}}
    assert_cut_is_zeroing(model, plan, _batch())
    parts = base_pruning.blocks(model)[first]
    # one key/value head of two kept, with both query heads that read it
    assert parts.q.base_layer.out_features == 2 * HEAD_SIZE and parts.k.base_layer.out_features == HEAD_SIZE
    assert parts.v.lora_B["default"].out_features == HEAD_SIZE and parts.ffn_in[0].base_layer.out_features == 22


def test_an_sft_run_prunes_a_decoder_and_every_loader_gets_the_same_model(gqa_gemma, pairs, tmp_path):
    from transformers import AutoModelForCausalLM

    params = {**SMALL, "max_length": 48, "prune_heads": 0.5, "prune_channels": 0.5, "prune_after": 0.2}
    spec = generation_spec(gqa_gemma, pairs, tmp_path / "out", task="sft", params=params)
    result = fit(spec, ListSink())
    cut = result.done["report"]["base_pruning"]
    assert cut["before"] == {"heads": 2 * HEADS, "channels": 2 * CHANNELS}
    assert cut["after"] == {"heads": HEADS, "channels": CHANNELS}
    plan = base_pruning.read_plan(result.adapter_dir)
    assert plan["sizes"] == {"head_size": HEAD_SIZE, "heads": HEADS, "kv_heads": KV_HEADS, "channels": CHANNELS}
    assert all(kept in ([0, 1], [2, 3]) for kept in plan["heads"].values())  # a whole group, by its score

    batch = _batch()
    with torch.no_grad():
        trained = result.model.eval()(**batch).logits
        studio = load_adapter(_causal_lm(gqa_gemma), result.adapter_dir).eval()
        assert torch.allclose(studio(**batch).logits, trained, atol=1e-5)
        merged = load_adapter(_causal_lm(gqa_gemma), result.adapter_dir, merge=True)
        merged.save_pretrained(str(tmp_path / "merged"))
        merged = AutoModelForCausalLM.from_pretrained(str(tmp_path / "merged")).eval()
        assert torch.allclose(merged(**batch).logits, trained, atol=1e-5)
        shapes = {n: p.shape for n, p in _causal_lm(gqa_gemma).state_dict().items()}
        assert {n: p.shape for n, p in merged.state_dict().items()} == shapes


@pytest.mark.parametrize("loss, refused", [("dpo", True), ("kto", True), ("orpo", False)])
def test_preference_tuning_with_a_reference_refuses_base_pruning(gqa_gemma, tmp_path, loss, refused):
    data = make_preference_file(tmp_path / "pairs.jsonl", rows=24)
    params = {**SMALL, "epochs": 1, "max_length": 48, "prune_channels": 0.5, "preference_loss": loss}
    spec = generation_spec(gqa_gemma, data, tmp_path / "out", task="preference", params=params, label_column="chosen")
    spec["input_column"] = "rejected"
    if not refused:
        assert run(spec, ListSink())["report"]["base_pruning"]["after"]["channels"] == CHANNELS
        return
    with pytest.raises(TrainingError) as raised:
        run(spec, ListSink())
    assert raised.value.kind == BAD_PARAMS and f"would change {loss.upper()}'s reference" in raised.value.message
