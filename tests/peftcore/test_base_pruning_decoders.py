"""Light-PEFT's base pruning on Llama-style decoders (peftcore/base_pruning.py), here a tiny Gemma 3 with
grouped-query attention (4 query heads, 2 key/value heads, as the bundled 270M shares one key/value head among
4): a cut equals zeroing what it cuts, whole groups go, an SFT run cuts the shares asked for and its adapter
reloads (through the studio and merged into plain transformers) with identical logits, a checkpoint resumes
exactly, the playground writes no "base model" answers with the cut base, decoders whose layers only look like
Llama's are not cut, and DPO and KTO, whose reference is the base model itself, are refused."""

import pytest
import torch

from peftcore import base_pruning
from peftcore.adapters import load_adapter
from peftcore.errors import BAD_PARAMS, TrainingError
from peftcore.events import ListSink
from peftcore.methods import get_method
from peftcore.predict import load_predictor, predict
from peftcore.schema import validate_params
from peftcore.train import fit, run
from tests.peftcore.test_base_pruning import assert_cut_is_zeroing
from tests.peftcore.test_checkpoints import SMALL, assert_resumes_exactly, generation_spec
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


@pytest.fixture(scope="module")
def pruned_sft(gqa_gemma, pairs, tmp_path_factory):
    params = {**SMALL, "max_length": 48, "prune_heads": 0.5, "prune_channels": 0.5, "prune_after": 0.2}
    return fit(generation_spec(gqa_gemma, pairs, tmp_path_factory.mktemp("sft"), task="sft", params=params), ListSink())


def _preference_spec(folder, data, out, **params):
    params = {**SMALL, "epochs": 1, "max_length": 48, **params}
    spec = generation_spec(folder, data, out, task="preference", params=params, label_column="chosen")
    return {**spec, "input_column": "rejected"}


@pytest.fixture(scope="module")
def preference_rows(tmp_path_factory):
    return make_preference_file(tmp_path_factory.mktemp("data") / "pairs.jsonl", rows=24)


@pytest.fixture(scope="module")
def pruned_orpo(gqa_gemma, preference_rows, tmp_path_factory):
    out = tmp_path_factory.mktemp("orpo")
    spec = _preference_spec(gqa_gemma, preference_rows, out, prune_channels=0.5, preference_loss="orpo")
    return fit(spec, ListSink())


def test_an_sft_run_prunes_a_decoder_and_every_loader_gets_the_same_model(gqa_gemma, pruned_sft, tmp_path):
    from transformers import AutoModelForCausalLM

    result = pruned_sft
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


def test_the_playground_writes_no_base_model_answers_for_a_cut_adapter(gqa_gemma, pruned_sft):
    # with the adapter off the model is the cut base, which is not the base model the column names
    predictor = load_predictor(gqa_gemma, pruned_sft.adapter_dir)
    assert predictor.base_cut
    answers = predict(predictor, ["the film was lovely"], max_new_tokens=4, compare_base=True)
    assert answers and all(set(a) == {"generation"} for a in answers)


def test_a_decoder_run_that_prunes_its_base_resumes_exactly(gqa_gemma, pairs, tmp_path):
    def make(out, **overrides):
        params = {**SMALL, "max_length": 48, "prune_heads": 0.5, "prune_channels": 0.25, "prune_after": 0.34}
        return generation_spec(gqa_gemma, pairs, out, task="sft", params=params, **overrides)

    reference = assert_resumes_exactly(make, tmp_path)
    assert reference.done["report"]["base_pruning"]["after"] == {"heads": HEADS, "channels": 2 * 48}


def test_decoders_that_only_name_their_layers_like_llama_are_not_cut():
    # OLMo 2's q/k norms span every head: a cut by Llama's rules would break its forward
    from transformers import LlamaConfig, LlamaForCausalLM, Olmo2Config, Olmo2ForCausalLM

    sizes = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, vocab_size=64)
    assert base_pruning.blocks(LlamaForCausalLM(LlamaConfig(**sizes)))
    olmo = Olmo2ForCausalLM(Olmo2Config(**sizes))
    assert base_pruning.blocks(olmo) == {}
    assert "Olmo2ForCausalLM is neither" in base_pruning.architecture_problem(olmo)
    assert base_pruning.model_type_problem("olmo2") and base_pruning.model_type_problem("gemma3_text") is None


@pytest.mark.parametrize("loss, refused", [("dpo", True), ("kto", True), ("orpo", False)])
def test_preference_tuning_with_a_reference_refuses_base_pruning(
    gqa_gemma, preference_rows, pruned_orpo, tmp_path, loss, refused
):
    if not refused:  # ORPO has no reference: the cut run is the fixture's
        assert pruned_orpo.done["report"]["base_pruning"]["after"]["channels"] == CHANNELS
        assert base_pruning.read_plan(pruned_orpo.adapter_dir)["heads"] == {}  # a share of 0 is not measured
        return
    spec = _preference_spec(gqa_gemma, preference_rows, tmp_path / "out", prune_channels=0.5, preference_loss=loss)
    with pytest.raises(TrainingError) as raised:
        run(spec, ListSink())
    assert raised.value.kind == BAD_PARAMS and f"would change {loss.upper()}'s reference" in raised.value.message


def test_continuing_a_cut_adapter_with_dpo_is_refused(gqa_gemma, preference_rows, pruned_orpo, tmp_path):
    # continuing loads the cut base, and DPO's reference is that base with the adapter off: no longer the base
    spec = _preference_spec(gqa_gemma, preference_rows, tmp_path / "out", preference_loss="dpo")
    spec["start_from"] = {"adapter_dir": str(pruned_orpo.adapter_dir), "mode": "continue"}
    with pytest.raises(TrainingError) as raised:
        run(spec, ListSink())
    assert raised.value.kind == BAD_PARAMS and "would then be DPO's reference" in raised.value.message


def test_a_head_share_that_would_cut_no_head_is_refused_with_the_reason(pairs, tmp_path):
    # one key/value head per layer (as the bundled 270M has): the cut must keep it, and with it every query head
    shared = make_tiny_gemma3(tmp_path / "shared-kv", heads=2, kv_heads=1)
    params = {**SMALL, "max_length": 48, "prune_heads": 0.5}
    with pytest.raises(TrainingError) as raised:
        run(generation_spec(shared, pairs, tmp_path / "out", task="sft", params=params), ListSink())
    assert raised.value.kind == BAD_PARAMS and "share one key/value head" in raised.value.message
    assert "at least 0.50, or 0" in base_pruning.heads_problem(0.25, 4, 2)
    assert "each layer's 12 heads cuts none" in base_pruning.heads_problem(0.05, 12, 12)
    assert base_pruning.heads_problem(0.5, 4, 2) is None and base_pruning.heads_problem(0, 4, 1) is None
