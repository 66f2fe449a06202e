"""One adapter per group (peftcore/groups.py, issue 21): rows split by a column, a shared adapter first, one
adapter per group evaluated on its own rows against the shared one, small groups listed with the reason, and
every adapter loadable through the index file."""

import csv
import json

import pytest

from peftcore.events import ListSink
from peftcore.groups import INDEX_FILE, load_group_predictor
from peftcore.predict import predict
from peftcore.train import run
from tests.peftcore.conftest import make_spec


@pytest.fixture
def grouped(tmp_path):
    """Two groups that disagree on what a word means, and one too small to train."""
    path = tmp_path / "grouped.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["sentence", "label", "user"])
        for i in range(30):
            writer.writerow([f"sick film number {i}", "1", "ann"])  # to ann, "sick" is praise
            writer.writerow([f"dull film number {i}", "0", "ann"])
            writer.writerow([f"sick film number {i}", "0", "bo"])  # to bo, it is not
            writer.writerow([f"great film number {i}", "1", "bo"])
        for i in range(5):
            writer.writerow([f"film {i}", str(i % 2), "cy"])
    return path


def test_each_group_gets_its_adapter_and_the_small_one_is_listed(bert_without_dropout, grouped, tmp_path):
    spec = make_spec(
        bert_without_dropout,
        grouped,
        tmp_path / "out",
        params={"epochs": 2, "batch_size": 8, "learning_rate": 5e-2},
        group_column="user",
        group_shared=True,
    )
    sink = ListSink()
    done = run(spec, sink)
    report = done["report"]
    assert [g["group"] for g in report["groups"]] == ["ann", "bo"]
    assert report["too_small"] == [{"group": "cy", "rows": 5, "reason": "fewer than 20 rows"}]
    assert report["shared"]["metrics"]["accuracy"] is not None and report["before_is"] == "the shared adapter"
    for group in report["groups"]:
        assert group["eval_rows"] > 0 and "accuracy" in group["gain"]
        assert group["gain"]["accuracy"] == pytest.approx(group["metrics"]["accuracy"] - group["before"]["accuracy"])
    # the job's metric: each row scored by its own group's adapter
    weights = [g["eval_rows"] for g in report["groups"]]
    expected = sum(g["metrics"]["accuracy"] * w for g, w in zip(report["groups"], weights)) / sum(weights)
    assert report["metrics"]["accuracy"] == pytest.approx(expected)
    # steps run on across the runs: one job's progress, never going back
    steps = [e["step"] for e in sink.events if e["event"] == "progress"]
    assert steps == sorted(steps) and len([e for e in sink.events if e["event"] == "done"]) == 1
    folder = tmp_path / "out" / "adapter"
    index = json.loads((folder / INDEX_FILE).read_text())
    assert set(index["groups"]) == {"ann", "bo"} and index["shared"] == "shared"
    # through the index: each group's adapter, and the shared one for a group without its own
    for group in ("ann", "bo", "cy"):
        answers = predict(load_group_predictor(bert_without_dropout, folder, group), ["sick film number 3"])
        assert answers[0]["label"] in ("0", "1")


def test_a_column_that_is_not_there_is_refused(bert_without_dropout, grouped, tmp_path):
    from peftcore.errors import TrainingError

    spec = make_spec(bert_without_dropout, grouped, tmp_path / "out", group_column="customer")
    with pytest.raises(TrainingError, match="no column 'customer'"):
        run(spec, ListSink())
