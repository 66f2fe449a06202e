"""Training with the defaults: the best epoch is what the adapter and the report hold, early stopping ends a run
that stopped improving, the report says why each setting was chosen, and a sentence-transformers checkpoint is
pooled by mean in training and in the playground alike."""

import json
import shutil

import pytest
import torch

from peftcore.events import ListSink
from peftcore.loop import make_optimizer, score
from peftcore.pooling import MEAN, checkpoint_pooling
from peftcore.predict import load_predictor, predict
from peftcore.tasks.text_classification import load_model
from peftcore.train import fit

from .conftest import make_spec


@pytest.fixture(scope="module")
def mean_pooled_bert(tiny_bert, tmp_path_factory):
    """The tiny BERT with a sentence-transformers pooling file saying mean, as the bundled MiniLM has."""
    folder = tmp_path_factory.mktemp("models") / "tiny-st"
    shutil.copytree(tiny_bert, folder)
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_mean_tokens": True}))
    return folder


def train(spec):
    sink = ListSink()
    return fit(spec, sink), sink


def test_the_report_holds_the_best_epoch_and_says_why_each_empty_setting_was_chosen(tiny_bert, sentiment_tsv, tmp_path):
    spec = make_spec(tiny_bert, sentiment_tsv, tmp_path / "out", params={"epochs": 6, "patience": 2})
    result, sink = train(spec)
    report = result.done["report"]
    evals = [e for e in sink.of("eval") if e["epoch"]]
    best = max(evals, key=lambda e: score(e["metrics"]))
    assert report["best"]["epoch"] == best["epoch"]
    assert report["metrics"]["accuracy"] == best["metrics"]["accuracy"]
    stopped = sink.of("early_stop")
    assert report["stopped_early"] == bool(stopped)
    if stopped:
        assert stopped[0]["epoch"] - best["epoch"] == 2 and report["steps"] < report["total_steps"]
    # epochs was set; everything else was left empty and chosen, each with its reason
    choices = report["choices"]
    assert "params.epochs" not in choices
    for key in ("params.batch_size", "params.max_length", "params.head_learning_rate", "params.eval_fraction"):
        assert choices[key], key
    assert report["params"]["batch_size"] == 16 and report["params"]["max_length"] >= 16
    assert report["intervals"]["accuracy"][0] <= report["metrics"]["accuracy"] <= report["intervals"]["accuracy"][1]
    assert sink.of("start")[0]["choices"]["params.batch_size"] == choices["params.batch_size"]


def test_patience_zero_trains_every_epoch_and_still_keeps_the_best(tiny_bert, sentiment_tsv, tmp_path):
    spec = make_spec(tiny_bert, sentiment_tsv, tmp_path / "out", params={"epochs": 4, "patience": 0})
    result, sink = train(spec)
    assert not sink.of("early_stop") and result.done["report"]["steps"] == result.done["report"]["total_steps"]
    evals = [e for e in sink.of("eval") if e["epoch"]]
    assert len(evals) == 4
    assert result.done["metrics"]["accuracy"] == max(e["metrics"]["accuracy"] for e in evals)


def test_the_new_head_learns_at_its_own_rate():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
    head = frozenset(model[1].parameters())
    optimizer = make_optimizer(model, 1e-3, 0.01, head, 1e-2)
    rates = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    assert {rates[id(p)] for p in model[0].parameters()} == {1e-3}
    assert {rates[id(p)] for p in model[1].parameters()} == {1e-2}
    assert optimizer.param_groups[0]["lr"] == 1e-3  # the body's rate comes first: it is the one reported
    plain = make_optimizer(model, 1e-3, 0.0)
    assert {g["lr"] for g in plain.param_groups} == {1e-3}


def test_a_sentence_transformers_checkpoint_is_pooled_by_mean_in_training_and_in_the_playground(
    mean_pooled_bert, sentiment_tsv, tmp_path
):
    assert checkpoint_pooling(mean_pooled_bert)[0] == MEAN
    spec = make_spec(mean_pooled_bert, sentiment_tsv, tmp_path / "out", params={"epochs": 2})
    result, _ = train(spec)
    report = result.done["report"]
    assert report["lineage"]["pooling"] == MEAN and "sentence-transformers" in report["choices"]["pooling"]
    assert not any("pooler" in name for name, p in result.model.named_parameters() if p.requires_grad)
    method_file = json.loads((result.adapter_dir / "peftcore_method.json").read_text())
    assert method_file["pooling"] == MEAN
    texts = ["a wonderful, moving film", "dull and far too long", "ok"]
    predictor = load_predictor(mean_pooled_bert, result.adapter_dir)
    served = predict(predictor, texts)
    encoded = result.tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        trained = torch.softmax(result.model.eval()(**encoded).logits, dim=-1)
    for row, probabilities in zip(served, trained.tolist()):
        assert list(row["probabilities"].values()) == pytest.approx(probabilities, abs=1e-5)


def test_mean_pooling_ignores_padding(mean_pooled_bert):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(mean_pooled_bert)
    model, new_modules = load_model(mean_pooled_bert, ["a", "b"], tokenizer.pad_token_id, pooling=MEAN)
    assert new_modules == ["classifier"]  # the replaced pooler is not a module to train
    model.eval()
    alone = tokenizer(["short"], return_tensors="pt")
    padded = tokenizer(
        ["short", "a much longer text that forces padding on the first"], padding=True, return_tensors="pt"
    )
    with torch.no_grad():
        one = model(**alone).logits[0]
        two = model(**padded).logits[0]
    assert torch.allclose(one, two, atol=1e-5)
