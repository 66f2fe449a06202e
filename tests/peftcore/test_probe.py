"""The classifier head can start from a linear probe (peftcore/probe.py, issue 16; probe_head, off by default after
it measured worse on SST-2): fitted on the training rows' features before the first step and reported; never over
an adapter's own head (start_from)."""

import pytest

from peftcore.events import ListSink
from peftcore.train import fit
from tests.peftcore.conftest import make_spec


def test_the_head_starts_from_a_probe_of_the_training_rows(bert_without_dropout, sentiment_tsv, tmp_path):
    sink = ListSink()
    spec = make_spec(bert_without_dropout, sentiment_tsv, tmp_path / "on", params={"epochs": 1, "probe_head": True})
    result = fit(spec, sink)
    probe = result.done["report"]["head_probe"]
    assert probe["rows"] == result.done["report"]["train_rows"]
    # the words of the tiny sentiment file separate the labels even on a random model's features
    assert probe["train_accuracy"] > 0.5
    assert any("linear probe" in p for p in sink.phases)


def test_by_default_the_head_starts_from_random(bert_without_dropout, sentiment_tsv, tmp_path):
    spec = make_spec(bert_without_dropout, sentiment_tsv, tmp_path / "off", params={"epochs": 1})
    sink = ListSink()
    result = fit(spec, sink)
    assert "head_probe" not in result.done["report"] and not any("linear probe" in p for p in sink.phases)


@pytest.mark.parametrize("mode", ["continue", "stack"])
def test_an_adapters_own_head_is_never_probed_over(bert_without_dropout, sentiment_tsv, tmp_path, mode):
    first = fit(make_spec(bert_without_dropout, sentiment_tsv, tmp_path / "first", params={"epochs": 1}), ListSink())
    spec = make_spec(
        bert_without_dropout,
        sentiment_tsv,
        tmp_path / mode,
        params={"epochs": 1, "probe_head": True},
        start_from={"adapter_dir": str(first.adapter_dir), "mode": mode},
    )
    assert "head_probe" not in fit(spec, ListSink()).done["report"]
