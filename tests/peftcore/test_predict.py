"""The playground's engine: any adapter folder the studio writes gives the same predictions as the trained model."""

import pytest
import torch

from peftcore.events import ListSink
from peftcore.predict import MAX_TEXTS, load_predictor, predict
from peftcore.train import fit
from tests.peftcore.conftest import make_spec

TEXTS = ["a wonderful, moving film", "dull and far too long", "fine"]


@pytest.mark.parametrize("method", ["lora", "red", "full", "prompt_tuning"])
def test_predictions_match_the_trained_model_for_every_kind_of_folder(tiny_bert, sentiment_tsv, tmp_path, method):
    result = fit(
        make_spec(
            tiny_bert,
            sentiment_tsv,
            tmp_path / "out",
            method=method,
            params={"epochs": 1, "max_rows": 32, "max_length": 32},
        ),
        ListSink(),
    )
    result.model.eval()
    with torch.no_grad():
        encoded = result.tokenizer(TEXTS, return_tensors="pt", padding=True, truncation=True, max_length=32)
        expected = torch.softmax(result.model(**encoded).logits, dim=-1)

    classifier = load_predictor(tiny_bert, result.adapter_dir)
    assert classifier.labels == result.labels
    predictions = predict(classifier, TEXTS, max_length=32)
    for row, want in zip(predictions, expected.tolist()):
        got = [row["probabilities"][label] for label in result.labels]
        assert got == pytest.approx(want, abs=1e-4) and sum(got) == pytest.approx(1, abs=1e-4)
        assert row["label"] == result.labels[max(range(len(want)), key=want.__getitem__)]


def test_too_many_texts_are_refused(tiny_bert, sentiment_tsv, tmp_path):
    result = fit(
        make_spec(tiny_bert, sentiment_tsv, tmp_path / "out", params={"epochs": 1, "max_rows": 16}), ListSink()
    )
    classifier = load_predictor(tiny_bert, result.adapter_dir)
    assert predict(classifier, []) == []
    with pytest.raises(ValueError, match=f"at most {MAX_TEXTS} texts"):
        predict(classifier, ["x"] * (MAX_TEXTS + 1))
