"""Starting from a finished job's adapter: continue training it, or keep it frozen and stack a new one on top."""

import json

import pytest
import torch

import peftcore
from peftcore.adapters import BASE_ADAPTER
from peftcore.counting import count_trainable
from peftcore.errors import BAD_DATA, BAD_PARAMS, TrainingError
from peftcore.events import ListSink
from peftcore.methods import all_methods, get_method
from peftcore.start_from import StartFrom, apply_start
from peftcore.tasks import load_tokenizer
from peftcore.tasks.text_classification import collate, encode, load_model
from peftcore.train import fit
from tests.peftcore.conftest import make_spec
from tests.tiny_models import make_sentiment_file, sentiment_rows

TASK = "text-classification"
PARAMS = {"epochs": 1, "batch_size": 16, "max_rows": 40, "max_length": 32}


@pytest.fixture(scope="module")
def trained(tiny_bert, sentiment_tsv, tmp_path_factory):
    """trained(method) -> the FitResult of a short job with that method (one per method per module)."""
    cache = {}

    def get(name):
        if name not in cache:
            out = tmp_path_factory.mktemp(f"first-{name}")
            cache[name] = fit(make_spec(tiny_bert, sentiment_tsv, out, method=name, params=PARAMS), ListSink())
        return cache[name]

    return get


def _logits(model, tokenizer):
    features = encode(tokenizer, [text for text, _ in sentiment_rows(6, seed=3)], 32)
    model.eval()
    with torch.no_grad():
        return model(**collate(features, tokenizer.pad_token_id)).logits


def _fresh(tiny_bert, labels, seed=123):
    tokenizer = load_tokenizer(tiny_bert)
    torch.manual_seed(seed)  # a different random head each time: the adapter must bring the trained one
    model, new_modules = load_model(tiny_bert, labels, tokenizer.pad_token_id)
    return model, new_modules, tokenizer


@pytest.mark.parametrize("name", [m.name for m in all_methods() if TASK in m.tasks])
def test_continue_loads_the_adapter_trainable_exactly_as_it_was_trained(tiny_bert, trained, name):
    first = trained(name)
    model, new_modules, tokenizer = _fresh(tiny_bert, first.labels)
    start = StartFrom(first.adapter_dir, "continue")
    method = get_method(name)
    params = json.loads((first.adapter_dir / "peftcore_method.json").read_text())["method_params"]
    resumed = apply_start(model, start, method, params, TASK, new_modules=new_modules, total_steps=10)
    assert torch.allclose(_logits(resumed, tokenizer), _logits(first.model, tokenizer), atol=1e-5)
    trainable = sum(p.numel() for p in resumed.parameters() if p.requires_grad)
    # AdaLoRA's saved rank pattern keeps only the ranks its budget allocated; p-tuning saves the prompt its
    # encoder produced, not the encoder, so it trains on that prompt.
    if name in ("adalora", "p_tuning"):
        assert 0 < trainable < first.done["report"]["trainable_params"]
    else:
        assert trainable == first.done["report"]["trainable_params"]


@pytest.mark.parametrize("name", ["lora", "adalora", "p_tuning", "red", "full"])
def test_a_continued_job_trains_on_and_saves_a_complete_adapter(tiny_bert, sentiment_tsv, trained, tmp_path, name):
    first = trained(name)
    sink = ListSink()
    again = fit(
        make_spec(
            tiny_bert,
            sentiment_tsv,
            tmp_path / "out",
            method=name,
            params=PARAMS,
            start_from={"adapter_dir": str(first.adapter_dir), "mode": "continue"},
        ),
        sink,
    )
    losses = [e["loss"] for e in sink.events if e["event"] == "progress"]
    assert losses and not (again.adapter_dir / BASE_ADAPTER).exists()
    model, _, tokenizer = _fresh(tiny_bert, again.labels)
    assert torch.allclose(
        _logits(peftcore.load_adapter(model, again.adapter_dir), tokenizer), _logits(again.model, tokenizer), atol=1e-5
    )
    assert not torch.allclose(_logits(again.model, tokenizer), _logits(first.model, tokenizer), atol=1e-6)


@pytest.mark.parametrize(
    "below, above",
    [("lora", "ia3"), ("red", "lora"), ("lora", "red"), ("bitfit", "red"), ("ia3", "bitfit"), ("s2ft", "ln_tuning")],
)
def test_stack_trains_only_the_new_adapter_and_reloads_both(tiny_bert, sentiment_tsv, trained, tmp_path, below, above):
    first = trained(below)
    spec = make_spec(
        tiny_bert,
        sentiment_tsv,
        tmp_path / "out",
        method=above,
        params=PARAMS,
        start_from={"adapter_dir": str(first.adapter_dir), "mode": "stack"},
    )
    sink = ListSink()
    result = fit(spec, sink)
    start = next(e for e in sink.events if e["event"] == "start")
    assert start["trainable_params"] == count_trainable(tiny_bert, above, {}, TASK)["trainable"]
    folder = result.adapter_dir
    assert (folder / BASE_ADAPTER / "labels.json").is_file()
    assert "base_adapter/" in (folder / "README.md").read_text()
    assert "peftcore.load_adapter(model, folder)" in (folder / "README.md").read_text()
    model, _, tokenizer = _fresh(tiny_bert, result.labels)
    expected = _logits(result.model, tokenizer)
    assert torch.allclose(_logits(peftcore.load_adapter(model, folder), tokenizer), expected, atol=1e-5)
    # The adapter below really is part of the result: without it the same top adapter gives other outputs.
    assert not torch.allclose(_logits(first.model, tokenizer), expected, atol=1e-4)


def test_continue_then_continue_again_of_a_stacked_adapter_keeps_its_base(tiny_bert, sentiment_tsv, trained, tmp_path):
    stacked = fit(
        make_spec(
            tiny_bert,
            sentiment_tsv,
            tmp_path / "a",
            method="ia3",
            params=PARAMS,
            start_from={"adapter_dir": str(trained("lora").adapter_dir), "mode": "stack"},
        ),
        ListSink(),
    )
    again = fit(
        make_spec(
            tiny_bert,
            sentiment_tsv,
            tmp_path / "b",
            method="ia3",
            params=PARAMS,
            start_from={"adapter_dir": str(stacked.adapter_dir), "mode": "continue"},
        ),
        ListSink(),
    )
    assert (again.adapter_dir / BASE_ADAPTER / "adapter_config.json").is_file()
    model, _, tokenizer = _fresh(tiny_bert, again.labels)
    assert torch.allclose(
        _logits(peftcore.load_adapter(model, again.adapter_dir), tokenizer), _logits(again.model, tokenizer), atol=1e-5
    )


@pytest.mark.parametrize(
    "below, above, mode, message",
    [
        ("lora", "ia3", "continue", "continue training keeps the adapter's method (lora)"),
        ("prompt_tuning", "lora", "stack", "cannot be merged into the base weights"),
        ("red", "red", "stack", "RED cannot be stacked on a RED adapter"),
        ("lora", "full", "stack", "cannot be stacked on an adapter"),
    ],
)
def test_combinations_that_cannot_work_are_refused_before_training(
    tiny_bert, sentiment_tsv, trained, tmp_path, below, above, mode, message
):
    spec = make_spec(
        tiny_bert,
        sentiment_tsv,
        tmp_path / "out",
        method=above,
        params=PARAMS,
        start_from={"adapter_dir": str(trained(below).adapter_dir), "mode": mode},
    )
    sink = ListSink()
    with pytest.raises(TrainingError) as raised:
        peftcore.train.run(spec, sink)
    assert raised.value.kind == BAD_PARAMS and message in raised.value.message
    assert [e["event"] for e in sink.events] == ["error"]


def test_data_with_labels_the_adapter_does_not_know_is_refused(tiny_bert, trained, tmp_path):
    other = make_sentiment_file(tmp_path / "three.tsv", rows=30)
    other.write_text(other.read_text() + "a neutral film\t2\n")
    spec = make_spec(
        tiny_bert,
        other,
        tmp_path / "out",
        params=PARAMS,
        start_from={"adapter_dir": str(trained("lora").adapter_dir), "mode": "continue"},
    )
    with pytest.raises(TrainingError) as raised:
        fit(spec, ListSink())
    assert raised.value.kind == BAD_DATA and "trained for the labels 0, 1" in raised.value.message
