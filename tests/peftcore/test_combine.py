"""Adapter arithmetic (peftcore/combine.py, issue 21): on a tiny BERT, the sum of two LoRA adapters changes the
weights by exactly the sum of their changes, an adapter minus itself changes nothing, the average of an adapter
with itself predicts what it predicts (heads included), the combined folder loads like any adapter, and
mismatched parents are refused with the reason."""

import json
import shutil

import pytest
import torch

from peftcore.combine import RECIPE_FILE, CombineError, combine
from peftcore.events import ListSink
from peftcore.predict import load_predictor, predict
from peftcore.train import fit
from tests.peftcore.conftest import make_spec

TEXTS = ["a gripping and lovely film", "dull, boring and far too long"]


@pytest.fixture(scope="module")
def adapters(bert_without_dropout, sentiment_tsv, tmp_path_factory):
    out = tmp_path_factory.mktemp("adapters")

    def train(name, **params):
        spec = make_spec(
            bert_without_dropout, sentiment_tsv, out / name, params={"epochs": 1, "batch_size": 8, **params}
        )
        return fit(spec, ListSink()).adapter_dir

    return {
        "a": train("a", seed=1, learning_rate=5e-2),
        "b": train("b", seed=2, learning_rate=5e-2),
        "ia3": fit(make_spec(bert_without_dropout, sentiment_tsv, out / "ia3", method="ia3"), ListSink()).adapter_dir,
        "ia3b": fit(
            make_spec(bert_without_dropout, sentiment_tsv, out / "ia3b", method="ia3", params={"seed": 2}), ListSink()
        ).adapter_dir,
        "loha": fit(
            make_spec(bert_without_dropout, sentiment_tsv, out / "loha", method="loha"), ListSink()
        ).adapter_dir,
        "r4": fit(
            make_spec(bert_without_dropout, sentiment_tsv, out / "r4", method_params={"r": 4}), ListSink()
        ).adapter_dir,
    }


def _merged_weights(model_folder, adapter) -> dict:
    """The base model's weights with the adapter folded in (the encoder only: heads are not weight changes)."""
    predictor = load_predictor(model_folder, adapter)
    model = predictor.model.merge_and_unload()
    return {k: v.clone() for k, v in model.state_dict().items() if "classifier" not in k and "pooler" not in k}


def test_the_sum_changes_the_weights_by_the_sum_of_the_changes(bert_without_dropout, adapters, tmp_path):
    from transformers import AutoModel

    base = AutoModel.from_pretrained(bert_without_dropout).state_dict()
    out = combine(bert_without_dropout, [adapters["a"], adapters["b"]], [1.0, 0.5], tmp_path / "sum")
    got, a, b = (_merged_weights(bert_without_dropout, f) for f in (out, adapters["a"], adapters["b"]))
    changed = 0
    for key, value in got.items():
        plain = key.removeprefix("bert.")
        if plain not in base:
            continue
        want = base[plain] + (a[key] - base[plain]) + 0.5 * (b[key] - base[plain])
        assert torch.allclose(value, want, atol=1e-5), key
        changed += not torch.allclose(a[key], base[plain])
    assert changed >= 4  # the adapters did change some weights: the check above compared something
    recipe = json.loads((out / RECIPE_FILE).read_text())
    assert recipe["combination"] == "sum" and recipe["weights"] == [1.0, 0.5] and len(recipe["parents"]) == 2


def test_an_adapter_minus_itself_leaves_the_base_model(bert_without_dropout, adapters, tmp_path):
    from transformers import AutoModel

    base = AutoModel.from_pretrained(bert_without_dropout).state_dict()
    twin = tmp_path / "twin"
    shutil.copytree(adapters["a"], twin)
    out = combine(bert_without_dropout, [adapters["a"], twin], [1.0, -1.0], tmp_path / "zero")
    alone = _merged_weights(bert_without_dropout, adapters["a"])
    compared = 0
    for key, value in _merged_weights(bert_without_dropout, out).items():
        plain = key.removeprefix("bert.")
        if plain in base:
            assert torch.allclose(value, base[plain], atol=1e-5), key
            compared += not torch.allclose(alone[key], base[plain])  # a weight the adapter alone does change
    assert compared >= 4


def test_the_average_of_an_adapter_with_itself_predicts_as_it_does(bert_without_dropout, adapters, tmp_path):
    twin = tmp_path / "twin"
    shutil.copytree(adapters["a"], twin)
    out = combine(bert_without_dropout, [adapters["a"], twin], [0.5, 0.5], tmp_path / "avg", combination="svd")
    want = predict(load_predictor(bert_without_dropout, adapters["a"]), TEXTS)
    got = predict(load_predictor(bert_without_dropout, out), TEXTS)
    for w, g in zip(want, got, strict=True):
        assert g["label"] == w["label"]
        assert g["probabilities"] == pytest.approx(w["probabilities"], abs=1e-4)


@pytest.mark.parametrize(
    ("pick", "weights", "options", "reason"),
    [
        (["a"], [1.0], {}, "at least two adapters"),
        (["a", "b"], [1.0], {}, "one weight per adapter"),
        (["a", "b"], [-1.0, -1.0], {}, "at least one weight must be positive"),
        (["a", "loha"], [1.0, 1.0], {}, "only LoRA and IA3 adapters can be combined"),
        (["a", "ia3"], [1.0, 1.0], {}, "different kinds"),
        (["ia3", "ia3b"], [1.0, 1.0], {"combination": "sum"}, "IA3 adapters combine by 'linear' only"),
        (["a", "r4"], [1.0, 1.0], {"combination": "ties", "density": 0.5}, "needs adapters of the same rank"),
        (["a", "b"], [1.0, 1.0], {"combination": "ties"}, "give a density between 0 and 1"),
        (["a", "b"], [1.0, 1.0], {"combination": "average"}, "unknown combination 'average'"),
    ],
)
def test_mismatched_parents_are_refused_with_the_reason(
    bert_without_dropout, adapters, tmp_path, pick, weights, options, reason
):
    with pytest.raises(CombineError, match=reason):
        combine(bert_without_dropout, [adapters[name] for name in pick], weights, tmp_path / "out", **options)
    assert not (tmp_path / "out").exists()


def test_adapters_that_know_other_labels_are_refused(bert_without_dropout, adapters, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(adapters["b"], other)
    (other / "labels.json").write_text(json.dumps({"labels": ["neg", "neu", "pos"]}))
    with pytest.raises(CombineError, match="different labels"):
        combine(bert_without_dropout, [adapters["a"], other], [1.0, 1.0], tmp_path / "out")


def test_the_command_line_combines_and_refuses(bert_without_dropout, adapters, tmp_path, capsys):
    from peftcore.cli import main

    out = tmp_path / "cli"
    code = main(["combine", "--model", str(bert_without_dropout), "--adapter", str(adapters["a"]),
                 "--adapter", str(adapters["b"]), "--weights", "1,-0.5", "--out", str(out)])  # fmt: skip
    assert code == 0 and json.loads(capsys.readouterr().out) == {"combined": str(out)}
    assert (out / "adapter_model.safetensors").is_file() and (out / "labels.json").is_file()
    code = main(["combine", "--model", str(bert_without_dropout), "--adapter", str(adapters["a"]),
                 "--adapter", str(adapters["loha"]), "--weights", "1,1", "--out", str(tmp_path / "no")])  # fmt: skip
    assert code != 0 and "only LoRA and IA3 adapters can be combined" in capsys.readouterr().err


def test_a_combination_job_evaluates_the_combined_adapter_beside_each_parent(
    bert_without_dropout, sentiment_tsv, adapters, tmp_path
):
    """The spec's combine section (combine_run.py): no optimizer step, the combined adapter saved and evaluated,
    and each parent evaluated on the same rows; a parent alone, weight 1, scores what the parent scores."""
    section = {"adapters": [str(adapters["a"]), str(adapters["b"])], "parents": [11, 12], "weights": [1.0, 0.0]}
    sink = ListSink()
    spec = make_spec(bert_without_dropout, sentiment_tsv, tmp_path / "out", params={"batch_size": 8}, combine=section)
    result = fit(spec, sink)
    kinds = [e["event"] for e in sink.events]
    assert "progress" not in kinds and kinds[-1] == "done"
    report = result.done["report"]
    parents = report["combination"]["parents"]
    assert [p["job"] for p in parents] == [11, 12] and report["combination"]["combination"] == "sum"
    # weights 1 and 0: the combination is parent a, so it scores exactly what parent a scores on these rows
    assert report["metrics"]["accuracy"] == parents[0]["metrics"]["accuracy"]
    assert "train_loss" not in report["metrics"]
    # the saved folder holds the combined adapter only (the parents evaluated beside it were removed)
    saved = result.adapter_dir
    assert (saved / "adapter_model.safetensors").is_file() and not list(saved.glob("parent_*"))
    assert predict(load_predictor(bert_without_dropout, saved), TEXTS) == predict(
        load_predictor(bert_without_dropout, adapters["a"]), TEXTS
    )


def test_a_combination_job_refuses_parents_that_do_not_combine(bert_without_dropout, sentiment_tsv, adapters, tmp_path):
    from peftcore.errors import TrainingError

    section = {"adapters": [str(adapters["a"]), str(adapters["loha"])], "weights": [1.0, 1.0]}
    spec = make_spec(bert_without_dropout, sentiment_tsv, tmp_path / "out", combine=section)
    with pytest.raises(TrainingError, match="only LoRA and IA3 adapters can be combined"):
        fit(spec, ListSink())


def test_ia3_adapters_combine_as_the_weighted_sum_of_their_scaling_vectors(bert_without_dropout, adapters, tmp_path):
    from safetensors.torch import load_file

    out = combine(
        bert_without_dropout, [adapters["ia3"], adapters["ia3b"]], [0.25, 0.75], tmp_path / "ia3", combination="linear"
    )
    got, a, b = (load_file(str(f / "adapter_model.safetensors")) for f in (out, adapters["ia3"], adapters["ia3b"]))
    vectors = [key for key in got if "ia3_l" in key]
    assert vectors and set(vectors) <= set(a)
    for key in vectors:
        assert torch.allclose(got[key], 0.25 * a[key] + 0.75 * b[key], atol=1e-6), key
    assert not torch.allclose(a[vectors[0]], b[vectors[0]])  # the two did learn different vectors


def test_a_pruned_adapter_is_refused_for_the_same_rank_combinations(bert_without_dropout, adapters, tmp_path):
    # Light-PEFT keeps each layer's own rank in rank_pattern while r stays 8: not one rank, though r agrees
    pruned = tmp_path / "pruned"
    shutil.copytree(adapters["b"], pruned)
    config = json.loads((pruned / "adapter_config.json").read_text())
    (pruned / "adapter_config.json").write_text(json.dumps({**config, "rank_pattern": {"layer\\.0\\.query": 4}}))
    with pytest.raises(CombineError, match="needs adapters of the same rank"):
        combine(bert_without_dropout, [adapters["a"], pruned], [1.0, 1.0], tmp_path / "out", combination="linear")
