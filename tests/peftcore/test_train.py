"""End-to-end training on a tiny random BERT: every registered method, saving and reloading, failures."""

import json

import pytest
import torch

from peftcore import train
from peftcore.errors import TrainingError
from peftcore.events import ListSink
from peftcore.methods import get_method
from tests.tiny_models import make_sentiment_file

from .conftest import make_spec

# Rates that learn the easy synthetic task quickly on a tiny random model (defaults suit real models).
FAST_LEARNING_RATE = {"lora": 2e-2, "ia3": 5e-2}
# The event protocol and the peft folder layout, checked in depth on two peft methods; every registered method
# is trained, saved and reloaded by test_method_matrix.py.
PROTOCOL_METHODS = ("lora", "ia3")
SAMPLE_TEXTS = ["a great , wonderful film", "an awful , boring plot", "the movie was fine", "superb"]


def fast_params(method, **extra):
    rate = FAST_LEARNING_RATE.get(method, 10 * get_method(method).recommended_learning_rate)
    # every epoch trained, 10% held out: the protocol's counts below follow from these (not from the defaults)
    return {
        "epochs": 8,
        "batch_size": 8,
        "learning_rate": rate,
        "seed": 42,
        "patience": 0,
        "eval_fraction": 0.1,
        **extra,
    }


@pytest.fixture(scope="module")
def trained(tiny_bert, sentiment_tsv, tmp_path_factory):
    """Each registered method trained once on the same data: {name: (FitResult, events)}."""
    results = {}
    for method in PROTOCOL_METHODS:
        sink = ListSink()
        out = tmp_path_factory.mktemp(f"out-{method}")
        spec = make_spec(tiny_bert, sentiment_tsv, out, method=method, params=fast_params(method))
        results[method] = (train.fit(spec, sink), sink)
    return results


@pytest.mark.parametrize("method", PROTOCOL_METHODS)
def test_training_reduces_the_loss(trained, method):
    _, sink = trained[method]
    losses = [e["loss"] for e in sink.of("progress")]
    assert len(losses) == 64  # 58 training rows / batch 8 = 8 steps, 8 epochs
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < first - 0.1, (first, last)


@pytest.mark.parametrize("method", PROTOCOL_METHODS)
def test_events_follow_the_protocol(trained, method):
    result, sink = trained[method]
    kinds = [e["event"] for e in sink.events]
    # eval at step 0: the baseline; best_restored when an epoch before the last scored best (its weights are kept)
    restored = ["best_restored"] if result.done["report"]["best"]["epoch"] < 8 else []
    assert kinds == ["start", "eval"] + (["progress"] * 8 + ["eval"]) * 8 + restored + ["done"]
    json.dumps(sink.events, allow_nan=False)
    start = sink.events[0]
    assert start["total_steps"] == 64 and start["labels"] == ["0", "1"] and start["method"] == method
    assert (start["train_rows"], start["eval_rows"]) == (58, 6)  # eval_fraction 0.1 of 64 rows
    assert 0 < start["trainable_params"] < start["total_params"]
    progress = sink.of("progress")
    assert [e["step"] for e in progress] == list(range(1, 65))
    assert progress[7]["epoch"] == 1.0 and progress[-1]["epoch"] == 8.0
    assert max(e["learning_rate"] for e in progress) == pytest.approx(FAST_LEARNING_RATE[method])
    evals = sink.of("eval")
    assert [e["epoch"] for e in evals] == list(range(9)) and [e["step"] for e in evals] == list(range(0, 65, 8))
    assert set(evals[0]["metrics"]) == {"eval_loss", "accuracy", "macro_f1"}
    done = sink.events[-1]
    assert done == result.done
    assert set(done["metrics"]) == {"eval_loss", "accuracy", "macro_f1", "train_loss"}
    report = done["report"]
    assert report["metrics"] == done["metrics"] and report["labels"] == ["0", "1"]
    assert sum(map(sum, report["confusion_matrix"])) == 6
    assert set(report["per_class"]) == {"0", "1"}
    assert sum(c["support"] for c in report["per_class"].values()) == 6
    assert report["params"]["learning_rate"] == FAST_LEARNING_RATE[method]
    defaults = {p.name: p.default for p in get_method(method).params}
    if method == "lora":
        defaults["lora_alpha"] = 2 * defaults["r"]  # left empty, alpha follows the rank
        assert report["choices"]["method_params.lora_alpha"].startswith("twice the rank")
    assert report["method_params"] == defaults
    assert report["train_seconds"] > 0 and report["method"] == method
    # The untrained model's figures, so the report shows the gain.
    assert report["baseline_metrics"] == evals[0]["metrics"]
    assert report["baseline_metrics"]["eval_loss"] > done["metrics"]["eval_loss"]
    efficiency = report["efficiency"]
    assert efficiency["trainable_share"] == pytest.approx(start["trainable_params"] / start["total_params"])
    assert efficiency["train_tokens"] > 58 * 8 and efficiency["tokens_per_second"] > 0
    adapter = result.adapter_dir
    assert efficiency["adapter_bytes"] == sum(p.stat().st_size for p in adapter.rglob("*") if p.is_file())
    assert efficiency["peak_memory_bytes"] > 50 * 2**20  # a Python process with torch holds more than 50 MiB
    lineage = report["lineage"]
    assert lineage["seed"] == 42 and lineage["params"] == report["params"] and lineage["method"] == method
    assert {"python", "torch", "transformers", "peft"} <= set(lineage["versions"]) and lineage["versions"]["peft"]


@pytest.mark.parametrize("method", PROTOCOL_METHODS)
def test_adapter_folder_contents(trained, method):
    adapter = trained[method][0].adapter_dir
    names = {p.name for p in adapter.iterdir()}
    assert {
        "adapter_model.safetensors",
        "adapter_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "labels.json",
        "README.md",
    } <= names
    assert not any(name.endswith((".bin", ".pt")) for name in names)
    assert json.loads((adapter / "labels.json").read_text()) == {"labels": ["0", "1"], "id2label": {"0": "0", "1": "1"}}
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "tiny-bert" and "classifier" in config["modules_to_save"]
    card = (adapter / "README.md").read_text()
    for line in (
        "AutoModelForSequenceClassification.from_pretrained(base, num_labels=2)",
        "PeftModel.from_pretrained(model, folder)",
        "argmax",
        "labels[i]",
        "ab" * 32,
        "| accuracy |",
    ):
        assert line in card
    assert not (adapter.parent / ".adapter.partial").exists()


@pytest.mark.parametrize("method", PROTOCOL_METHODS)
def test_saved_adapter_reloads_with_the_same_logits(trained, tiny_bert, method):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    result, _ = trained[method]
    tokenizer = AutoTokenizer.from_pretrained(result.adapter_dir)
    inputs = tokenizer(SAMPLE_TEXTS, padding=True, return_tensors="pt")
    result.model.eval()
    with torch.no_grad():
        expected = result.model(**inputs).logits
    base = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2)
    reloaded = PeftModel.from_pretrained(base, result.adapter_dir).eval()
    with torch.no_grad():
        actual = reloaded(**inputs).logits
    assert torch.allclose(expected, actual, atol=1e-5), (expected, actual)
    assert not torch.allclose(actual[0], actual[1])  # the model does tell texts apart


def test_newly_initialised_modules_are_trained_and_saved(tiny_bert, sentiment_tsv, tmp_path):
    """A checkpoint without pooler weights: the fresh pooler must be trained and saved, or a reload would
    start it from different random values and predict differently."""
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, BertModel

    no_pooler = tmp_path / "no-pooler"
    BertModel.from_pretrained(tiny_bert, add_pooling_layer=False).save_pretrained(no_pooler)
    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(no_pooler)
    spec = make_spec(no_pooler, sentiment_tsv, tmp_path / "out", params={"epochs": 1, "learning_rate": 1e-2})
    result = train.fit(spec, ListSink())
    trainable = {n for n, p in result.model.named_parameters() if p.requires_grad}
    assert "base_model.model.bert.pooler.dense.modules_to_save.default.weight" in trainable
    inputs = AutoTokenizer.from_pretrained(result.adapter_dir)(SAMPLE_TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = result.model.eval()(**inputs).logits
        torch.manual_seed(123)  # a different random pooler, unless it comes from the adapter
        base = AutoModelForSequenceClassification.from_pretrained(no_pooler, num_labels=2)
        actual = PeftModel.from_pretrained(base, result.adapter_dir).eval()(**inputs).logits
    assert torch.allclose(expected, actual, atol=1e-5)


def test_eval_file_and_row_limit(tiny_bert, sentiment_tsv, tmp_path):
    eval_file = make_sentiment_file(tmp_path / "dev.jsonl", rows=10, fmt="jsonl")
    sink = ListSink()
    spec = make_spec(
        tiny_bert,
        sentiment_tsv,
        tmp_path / "out",
        eval_file=str(eval_file),
        params={"epochs": 1, "max_rows": 20, "batch_size": 32},
    )
    done = train.run(spec, sink)
    assert (done["report"]["train_rows"], done["report"]["eval_rows"]) == (20, 10)
    assert sink.events[0]["total_steps"] == 1
    assert done["report"]["params"]["learning_rate"] == get_method("lora").recommended_learning_rate


def test_holdout_keeps_at_least_one_row(tiny_bert, tmp_path):
    data = tmp_path / "tiny.tsv"
    data.write_text("sentence\tlabel\ngood\t1\nbad\t0\nfine\t1\n")
    done = train.run(make_spec(tiny_bert, data, tmp_path / "out"), ListSink())
    assert (done["report"]["train_rows"], done["report"]["eval_rows"]) == (2, 1)


def test_max_length_is_capped_at_what_the_model_reads(tiny_bert, sentiment_tsv, tmp_path):
    spec = make_spec(tiny_bert, sentiment_tsv, tmp_path / "out", params={"epochs": 1, "max_length": 4096})
    assert train.run(spec, ListSink())["report"]["params"]["max_length"] == 512


def failure(spec):
    sink = ListSink()
    with pytest.raises(TrainingError) as caught:
        train.run(spec, sink)
    event = sink.events[-1]
    assert event["event"] == "error"
    assert (event["kind"], event["message"]) == (caught.value.kind, caught.value.message)
    return event


def test_missing_column_is_bad_data(tiny_bert, sentiment_tsv, tmp_path):
    event = failure(make_spec(tiny_bert, sentiment_tsv, tmp_path, text_column="text"))
    assert event["kind"] == "bad_data"
    assert event["message"] == "training file 'train.tsv': column 'text' not found; columns are: sentence, label"


def test_bad_row_is_bad_data_with_its_row(tiny_bert, tmp_path):
    data = tmp_path / "d.tsv"
    data.write_text("sentence\tlabel\ngood\t1\nbad\t0\textra\n")
    event = failure(make_spec(tiny_bert, data, tmp_path / "out"))
    assert event == {
        "event": "error",
        "kind": "bad_data",
        "message": "training file 'd.tsv': row 3: expected 2 fields, found 3",
    }


def test_unseen_eval_label_names_the_row(tiny_bert, sentiment_tsv, tmp_path):
    dev = tmp_path / "dev.csv"
    dev.write_text("sentence,label\nnice,1\nmeh,neutral\n")
    event = failure(make_spec(tiny_bert, sentiment_tsv, tmp_path / "out", eval_file=str(dev)))
    assert event["kind"] == "bad_data"
    assert "row 3" in event["message"] and "'neutral' does not occur in the training data" in event["message"]


def test_single_label_is_bad_data(tiny_bert, tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("sentence,label\na,1\nb,1\n")
    assert "only one value ('1')" in failure(make_spec(tiny_bert, data, tmp_path / "out"))["message"]


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"params": {"epochs": 0}}, "training parameters: epochs: must be between 1 and 100 (got 0)"),
        ({"method_params": {"r": "big"}}, "LoRA parameters: r: must be a whole number (got 'big')"),
        ({"method": "dora"}, "unknown method 'dora'; known methods: lora, ia3"),
        ({"task": "translation"}, "unknown task 'translation'"),
        ({"output_dir": None}, "the job spec is missing: output_dir"),
        ({"method_params": {"target_modules": "nothing_like_this"}}, "LoRA cannot be applied to this model"),
    ],
)
def test_bad_params(tiny_bert, sentiment_tsv, tmp_path, overrides, message):
    event = failure(make_spec(tiny_bert, sentiment_tsv, tmp_path / "out", **overrides))
    assert event["kind"] == "bad_params" and message in event["message"]


def test_model_without_safetensors_is_a_model_load_error(sentiment_tsv, tmp_path):
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "bert"}')
    (folder / "pytorch_model.bin").write_bytes(b"not loaded")
    event = failure(make_spec(folder, sentiment_tsv, tmp_path / "out"))
    assert event["kind"] == "model_load" and "safetensors weights only" in event["message"]


def test_broken_model_folder_is_a_model_load_error(sentiment_tsv, tmp_path, tiny_bert):
    folder = tmp_path / "broken"
    folder.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (folder / name).write_bytes((tiny_bert / name).read_bytes())
    (folder / "model.safetensors").write_bytes(b"garbage")
    assert failure(make_spec(folder, sentiment_tsv, tmp_path / "out"))["kind"] == "model_load"


@pytest.mark.parametrize(
    "exc, kind",
    [
        (RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"), "out_of_memory"),
        (torch.OutOfMemoryError("boom"), "out_of_memory"),
        (MemoryError(), "out_of_memory"),
        (KeyError("x"), "internal"),
    ],
)
def test_failure_classification(exc, kind):
    error = train.classify_failure(exc)
    assert error.kind == kind
    if kind == "out_of_memory":
        assert "smaller batch size or max length" in error.message
    else:
        assert error.message == "KeyError: 'x'"


def test_the_untrained_model_is_measured_on_a_sample_of_a_large_evaluation_set(
    tiny_bert, sentiment_tsv, tmp_path, monkeypatch
):
    from peftcore import defaults

    monkeypatch.setattr(defaults, "BASELINE_ROWS", 3)  # of the 6 held-out rows
    sink = ListSink()
    spec = make_spec(tiny_bert, sentiment_tsv, tmp_path, method="lora", params=fast_params("lora", epochs=1))
    result = train.fit(spec, sink)
    report = result.done["report"]
    assert (report["baseline_rows"], report["eval_rows"]) == (3, 6)
    first, last = sink.of("eval")[0], sink.of("eval")[-1]
    assert first["metrics"]["accuracy"] * 3 == pytest.approx(round(first["metrics"]["accuracy"] * 3))  # k of 3
    assert last["metrics"]["accuracy"] * 6 == pytest.approx(round(last["metrics"]["accuracy"] * 6))  # all 6 rows


def test_the_untrained_model_is_not_measured_when_turned_off(tiny_bert, sentiment_tsv, tmp_path):
    sink = ListSink()
    spec = make_spec(tiny_bert, sentiment_tsv, tmp_path, method="lora", params=fast_params("lora", epochs=1))
    spec["params"]["baseline_eval"] = False
    report = train.fit(spec, sink).done["report"]
    assert [e["event"] for e in sink.events[:2]] == ["start", "progress"]  # no step-0 evaluation
    assert report["baseline_metrics"] is None and report["baseline_rows"] is None
    assert [e["step"] for e in sink.of("eval")] == [8]


def test_progress_carries_an_eta_from_steady_state_steps(tiny_bert, sentiment_tsv, tmp_path):
    from peftcore.loop import StepClock

    sink = ListSink()
    spec = make_spec(tiny_bert, sentiment_tsv, tmp_path, method="lora", params=fast_params("lora", epochs=2))
    train.fit(spec, sink)
    etas = [e.get("eta_seconds") for e in sink.of("progress")]
    assert etas[0] is None  # the first step pays for lazy initialisation: no estimate from it
    assert all(eta is not None and eta >= 0 for eta in etas[1:])
    assert etas[-1] < etas[1]
    clock = StepClock()
    for seconds in (9.0, 1.0, 1.2, 0.8, 30.0, 1.0):  # the first and a stray slow step do not move the median
        clock.step(seconds)
    assert clock.eta(10, 0) == 10.0
    clock.evaluation(5.0)
    assert clock.eta(10, 2) == 20.0


def test_the_run_says_what_it_is_doing_at_each_phase(tiny_bert, sentiment_tsv, tmp_path):
    sink = ListSink()
    spec = make_spec(tiny_bert, sentiment_tsv, tmp_path, method="lora", params=fast_params("lora", epochs=2))
    train.fit(spec, sink)
    assert sink.phases[:5] == [
        "reading the data",
        "loading the model on the CPU",
        "tokenizing 58 training and 6 evaluation rows",
        "measuring the untrained model",
        "training",
    ]
    assert sink.phases[5:7] == ["evaluating epoch 1 of 2 on 6 rows", "training"]
    assert sink.phases[-1] == "saving the adapter"
    assert not [e for e in sink.events if e["event"] == "phase"]  # narration, apart from the protocol's events
