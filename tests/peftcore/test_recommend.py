"""The recommended method comes from the benchmark table: best accuracy at the closest size, cheaper on a tie."""

import pytest

from peftcore.recommend import TIE, load_table, pick, recommend
from peftcore.tasks import UnknownTaskError


def run(rows, *results, task="text-classification"):
    return {
        "task": task,
        "benchmark": "SST-2 test",
        "rows": rows,
        "epochs": 3,
        "date": "2026-11-24",
        "results": [r if isinstance(r, dict) else dict(zip(("method", "accuracy", "trainable"), r)) for r in results],
    }


TABLE = {
    "runs": [
        run(500, ("lora", 0.70, 74_000), ("red", 0.74, 5_000), ("full", 0.80, 22_000_000)),
        run(
            2000,
            ("lora", 0.82, 74_000),
            ("ia3", 0.80, 17_000),
            ("full", 0.85, 22_000_000),
            ("freeze", 0.83, 3_500_000),
            {"method": "loha", "failed": "bad_params"},
        ),
    ]
}


def test_the_closest_benchmarked_size_on_a_log_scale_decides():
    assert recommend("text-classification", 300, table=TABLE).method == "red"
    assert recommend("text-classification", 900, table=TABLE).method == "red"
    assert recommend("text-classification", 1100, table=TABLE).method == "lora"
    assert recommend("text-classification", 60_000, table=TABLE).method == "lora"


def test_reference_points_and_failed_methods_are_never_recommended():
    rec = recommend("text-classification", 2000, table=TABLE)
    assert rec.method == "lora" and rec.accuracy == 0.82 and rec.runner_up == "ia3"
    assert "82.0%" in rec.reason and "full fine-tuning: 85.0%" in rec.reason and "ia3 at 80.0%" in rec.reason


def test_on_a_tie_the_method_with_fewer_trainable_parameters_wins():
    tied = [
        {"method": "lora", "accuracy": 0.82, "trainable": 74_000},
        {"method": "ia3", "accuracy": 0.82 - TIE / 2, "trainable": 17_000},
        {"method": "vera", "accuracy": 0.82 - 2 * TIE, "trainable": 8_000},
    ]
    best, runner_up = pick(tied)
    assert best["method"] == "ia3" and runner_up["method"] == "lora"


def test_the_reason_says_when_the_size_was_not_benchmarked():
    assert "closest to your 60,000" in recommend("text-classification", 60_000, table=TABLE).reason
    assert "closest to your" not in recommend("text-classification", 2000, table=TABLE).reason


def test_a_task_without_a_benchmark_falls_back_and_says_so():
    rec = recommend("text-classification", 2000, table={"runs": [run(2000, ("red", 0.9, 1), task="other")]})
    assert rec.method == "lora" and "No studio benchmark" in rec.reason and rec.benchmark_rows is None
    with pytest.raises(UnknownTaskError):
        recommend("summarise-my-cat", 2000, table=TABLE)


def test_the_shipped_table_recommends_its_own_best_parameter_efficient_method():
    table = load_table()
    assert table["runs"], "peftcore/benchmark_table.json holds no run: record one with bench/methods.py --record"
    for bench_run in table["runs"]:
        rec = recommend(bench_run["task"], bench_run["rows"])
        finished = [r for r in bench_run["results"] if r.get("accuracy") is not None]
        peft = [r for r in finished if r["method"] not in ("full", "freeze")]
        assert rec.method in {r["method"] for r in peft}
        assert rec.accuracy >= max(r["accuracy"] for r in peft) - TIE
        assert rec.benchmark_rows == bench_run["rows"]


def test_a_tie_winner_is_explained_against_the_most_accurate_method():
    table = {"runs": [run(2000, ("lora", 0.776, 74_498), ("ln_tuning", 0.772, 9_986), ("ia3", 0.70, 16_898))]}
    rec = recommend("text-classification", 2000, table=table)
    assert rec.method == "ln_tuning"
    assert "Within half a point of the best dev accuracy" in rec.reason and "(lora, 77.6%)" in rec.reason
    assert "9,986 trainable parameters instead of 74,498" in rec.reason
