"""The recommended method comes from the benchmark table: LoRA unless broad evidence (two datasets, two seeds at
the closest size) shows another method beating it in every run; the reason says how sure it is."""

import pytest

from peftcore.recommend import TIE, load_table, recommend, summarise
from peftcore.tasks import UnknownTaskError


def run(rows, *results, dataset="sst2", seed=1, task="text-classification"):
    return {
        "task": task,
        "benchmark": "test",
        "dataset": dataset,
        "seed": seed,
        "rows": rows,
        "epochs": 3,
        "date": "2026-12-04",
        "results": [r if isinstance(r, dict) else dict(zip(("method", "accuracy", "trainable"), r)) for r in results],
    }


def broad(rows, red_gains, lora=0.80):
    """Four runs (two datasets x two seeds) where RED beats LoRA by the given gains."""
    places = [("sst2", 1), ("sst2", 2), ("news", 1), ("news", 2)]
    return [
        run(rows, ("lora", lora, 74_000), ("red", lora + gain, 5_000), ("full", 0.9, 22_000_000), dataset=d, seed=s)
        for (d, s), gain in zip(places, red_gains)
    ]


def test_a_method_that_beats_lora_in_every_run_of_broad_evidence_is_recommended_and_says_how_sure():
    rec = recommend("text-classification", 2000, table={"runs": broad(2000, [0.02, 0.01, 0.03, 0.02])})
    assert rec.method == "red" and rec.confidence == "clear winner" and rec.runs == 4
    assert "2 dataset(s) x 2 seed(s)" in rec.reason and "better than LoRA in every run, by 2.0%" in rec.reason
    assert rec.accuracy == pytest.approx(0.82) and rec.runner_up == "lora"


def test_one_lost_run_or_a_lead_within_the_noise_leaves_lora():
    lost = recommend("text-classification", 2000, table={"runs": broad(2000, [0.05, 0.05, 0.05, -0.01])})
    assert lost.method == "lora" and lost.confidence == "no clear winner"
    assert "won 3 of 4" in lost.reason and lost.runner_up == "red"
    tiny = recommend("text-classification", 2000, table={"runs": broad(2000, [TIE / 2] * 4)})
    assert tiny.method == "lora"


def test_a_single_seed_or_dataset_is_never_enough_to_crown_a_method():
    one_seed = [r for r in broad(2000, [0.05] * 4) if r["seed"] == 1]
    rec = recommend("text-classification", 2000, table={"runs": one_seed})
    assert rec.method == "lora" and "too little evidence" in rec.reason and "best mean there: red" in rec.reason
    one_dataset = [r for r in broad(2000, [0.05] * 4) if r["dataset"] == "sst2"]
    assert recommend("text-classification", 2000, table={"runs": one_dataset}).method == "lora"


def test_the_closest_benchmarked_size_on_a_log_scale_decides():
    table = {"runs": broad(500, [0.03] * 4) + broad(2000, [-0.01] * 4)}
    assert recommend("text-classification", 300, table=table).method == "red"
    assert recommend("text-classification", 900, table=table).method == "red"
    assert recommend("text-classification", 1100, table=table).method == "lora"
    rec = recommend("text-classification", 60_000, table=table)
    assert rec.method == "lora" and "closest to your 60,000" in rec.reason


def test_reference_points_and_failed_methods_are_never_recommended():
    runs = broad(2000, [0.01] * 4)
    for r in runs:
        r["results"].append({"method": "loha", "failed": "bad_params"})
    ranked = summarise(runs)
    assert {r["method"] for r in ranked} == {"lora", "red"}  # full is a reference point, loha failed


def test_a_task_without_a_benchmark_falls_back_and_says_so():
    rec = recommend("text-classification", 2000, table={"runs": [run(2000, ("red", 0.9, 1), task="other")]})
    assert rec.method == "lora" and "No studio benchmark" in rec.reason and rec.benchmark_rows is None
    with pytest.raises(UnknownTaskError):
        recommend("summarise-my-cat", 2000, table=broad(2000, [0.0] * 4))


def test_the_shipped_table_gives_a_recommendation_with_its_reason_for_every_benchmarked_size():
    table = load_table()
    assert table["runs"], "peftcore/benchmark_table.json holds no run: record one with bench/methods.py --record"
    for bench_run in table["runs"]:
        rec = recommend(bench_run["task"], bench_run["rows"])
        assert rec.benchmark_rows == bench_run["rows"] and rec.confidence in ("clear winner", "no clear winner")
        assert rec.method == "lora" or rec.confidence == "clear winner"
