"""Every registered method, end to end on the tiny BERT classifier: it learns, exactly its parameters train (and
their number is the meta-device count and, where there is one, the method's formula), save then reload gives
identical logits, and an unsupported model is refused before any training."""

import json
import shutil

import pytest
import torch

import peftcore
from peftcore.counting import count_trainable
from peftcore.errors import BAD_PARAMS, TrainingError
from peftcore.events import ListSink
from peftcore.methods import all_methods, get_method
from peftcore.schema import validate_params
from peftcore.tasks import load_tokenizer
from peftcore.tasks.text_classification import collate, encode, load_model
from peftcore.train import fit, run
from tests.peftcore.conftest import loss_before_and_after, make_spec
from tests.tiny_models import sentiment_rows

TASK = "text-classification"
STEPS = 8
# Option variants worth their own row: LoRA's options and placement, RED on both sub-layers, Houlsby adapters,
# S2FT on FFN channels only.
CASES = [(m.name, {}) for m in all_methods() if TASK in m.tasks] + [
    ("lora", {"use_dora": True}),
    ("lora", {"init": "pissa"}),
    ("lora", {"init": "olora", "use_rslora": True}),
    ("lora", {"use_kasa": True}),
    ("lora", {"init": "eva"}),
    ("lora", {"init": "lora_ga"}),
    ("lora", {"init": "corda"}),
    ("lora", {"init": "corda_kpm"}),
    ("lora", {"init": "mica"}),
    ("lora", {"init": "orthogonal"}),
    ("lora", {"velora": True}),
    ("lora", {"bd_blocks": 2}),
    ("lora", {"placement": "ffn", "layers": "last 1"}),
    ("loha", {"placement": "both", "layers": "0"}),
    ("red", {"placement": "both", "layers": "last 1"}),
    ("bottleneck", {"config": "houlsby", "layers": "last 1"}),
    ("s2ft", {"head_fraction": 0, "channel_fraction": 0.25, "layers": "0"}),
]
IDS = [name + "".join(f"-{k}={v}" for k, v in params.items()) for name, params in CASES]


def _batch(tokenizer, rows):
    features = encode(tokenizer, [text for text, _ in rows], 32)
    return collate(features, tokenizer.pad_token_id), torch.tensor([int(label) for _, label in rows])


def _build(tiny_bert, name, params):
    method = get_method(name)
    clean, errors = validate_params(method.params, params)
    assert errors == {}
    tokenizer = load_tokenizer(tiny_bert)
    torch.manual_seed(0)
    model, new_modules = load_model(tiny_bert, ["0", "1"], tokenizer.pad_token_id)
    base = {n: p.numel() for n, p in model.named_parameters()}
    return method, tokenizer, method.build(model, clean, TASK, new_modules=new_modules, total_steps=STEPS), base


@pytest.mark.parametrize("name, params", CASES, ids=IDS)
def test_a_few_steps_reduce_the_loss_and_exactly_the_method_trains(tiny_bert, name, params):
    method, tokenizer, model, base = _build(tiny_bert, name, params)
    trainable = {n: p.numel() for n, p in model.named_parameters() if p.requires_grad}
    counted = count_trainable(tiny_bert, name, params, TASK)
    assert sum(trainable.values()) == counted["trainable"] > counted["head"] == 66  # 32 x 2 + 2
    assert counted["total"] == sum(p.numel() for p in model.parameters())
    head = {n for n in trainable if "classifier" in n}
    assert head and all(n.endswith(("weight", "bias")) for n in head)
    if name == "red":
        hidden, blocks = 32, (2 if not params else 1)
        edits = 2 if params.get("placement") == "both" else 1
        assert sum(trainable.values()) - 66 == 2 * hidden * blocks * edits  # the paper's formula
    if name == "bitfit":
        biases = sum(n for k, n in base.items() if k.endswith(".bias") and not k.startswith("classifier."))
        assert set(trainable) - head == {k for k in base if k.endswith(".bias")} - {"classifier.bias"}
        assert sum(trainable.values()) - 66 == biases
    if name == "full":
        assert sum(trainable.values()) == sum(base.values())

    torch.manual_seed(0)
    batch, targets = _batch(tokenizer, sentiment_rows(16, seed=1))
    before, after = loss_before_and_after(model, method, batch, targets, STEPS)
    assert after < before


@pytest.mark.parametrize("name, params", CASES, ids=IDS)
def test_save_then_reload_gives_identical_logits(tiny_bert, sentiment_tsv, tmp_path, name, params):
    spec = make_spec(
        tiny_bert,
        sentiment_tsv,
        tmp_path / "out",
        method=name,
        method_params=params,
        params={"epochs": 1, "batch_size": 16, "max_rows": 40, "max_length": 32},
    )
    result = fit(spec, ListSink())
    folder = result.adapter_dir
    assert (folder / "README.md").is_file() and (folder / "labels.json").is_file()
    card = (folder / "README.md").read_text()
    saved_as = get_method(name).saved_as
    assert {
        "peft": "PeftModel.from_pretrained(model, folder)",
        "peftcore": "peftcore.load_adapter(model, folder)",
        "full": "from_pretrained(folder)",
    }[saved_as] in card
    tokenizer = load_tokenizer(tiny_bert)
    batch, _ = _batch(tokenizer, sentiment_rows(6, seed=3))
    result.model.eval()
    with torch.no_grad():
        expected = result.model(**batch).logits
    torch.manual_seed(123)  # a different random head: the adapter must bring the trained one
    fresh, _ = load_model(tiny_bert, result.labels, tokenizer.pad_token_id)
    reloaded = peftcore.load_adapter(fresh, folder)
    reloaded.eval()
    with torch.no_grad():
        assert torch.allclose(reloaded(**batch).logits, expected, atol=1e-5)


@pytest.mark.parametrize("name", [m.name for m in all_methods() if TASK in m.tasks])
def test_an_unsupported_model_is_refused_before_training(tiny_bert, sentiment_tsv, tmp_path, name):
    folder = tmp_path / "other-model"
    shutil.copytree(tiny_bert, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(dict(config, model_type="electra")))
    sink = ListSink()
    with pytest.raises(TrainingError) as raised:
        run(make_spec(folder, sentiment_tsv, tmp_path / "out", method=name), sink)
    assert raised.value.kind == BAD_PARAMS and "'electra'" in raised.value.message
    assert [e["event"] for e in sink.events] == ["error"]  # nothing started


def test_bitfit_refuses_models_without_biases_with_its_reason():
    assert "no bias terms" in get_method("bitfit").supports("llama")
    assert get_method("bitfit").supports("bert") is None


def test_red_on_llama_2_7b_trains_about_25700_times_fewer_weights_than_full_fine_tuning():
    from transformers import LlamaConfig

    from peftcore.counting import count_on_meta

    config = LlamaConfig(
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=32,
        vocab_size=32000,
        max_position_embeddings=4096,
    )
    full = count_on_meta(config, "full", {}, TASK, causal_lm=True)
    red = count_on_meta(config, "red", {}, TASK, causal_lm=True)
    assert full["trainable"] == 6_738_415_616  # LLaMA-2-7B
    assert red["trainable"] == 2 * 4096 * 32
    assert round(full["trainable"] / red["trainable"], -2) == 25_700
