"""The recommended default method for a task and a dataset size, read from the studio's own benchmark table.

`benchmark_table.json` (beside this file) is written by `bench/methods.py --record`: per benchmarked
training size, every method's dev accuracy and trainable count at its defaults. The recommendation is the
method with the best accuracy at the benchmarked size closest to the user's (on a log scale), among the
parameter-efficient methods (full fine-tuning and freeze are reference points, not recommendations); methods
within TIE of the best count as tied and the one with fewer trainable parameters wins, since it is cheaper to
train, store and serve. Rerunning the benchmark updates the recommendation; no rule here names a method.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

from .tasks import check_task

TABLE = Path(__file__).with_name("benchmark_table.json")
REFERENCE_POINTS = frozenset({"full", "freeze"})  # measured for comparison, never recommended
TIE = 0.005  # half a point of accuracy: within one seed's noise on 872 dev rows
FALLBACK = "lora"


@dataclass(frozen=True)
class Recommendation:
    method: str
    reason: str
    benchmark_rows: int | None = None  # the benchmarked size the choice comes from
    accuracy: float | None = None
    trainable: int | None = None
    runner_up: str | None = None

    def as_json(self) -> dict:
        return asdict(self)


@lru_cache(maxsize=1)
def _table() -> dict:
    return json.loads(TABLE.read_text()) if TABLE.exists() else {"runs": []}


def load_table() -> dict:
    return _table()


def closest_run(runs: list[dict], rows: int) -> dict | None:
    """The benchmarked size nearest to `rows` on a log scale (ties: the larger size)."""
    if not runs:
        return None
    target = math.log(max(rows, 1))
    return min(runs, key=lambda run: (abs(math.log(run["rows"]) - target), -run["rows"]))


def pick(results: list[dict]) -> tuple[dict, dict | None]:
    """(best, runner_up) among the benchmarked parameter-efficient methods that finished."""
    candidates = [r for r in results if r.get("accuracy") is not None and r["method"] not in REFERENCE_POINTS]
    if not candidates:
        raise ValueError("the benchmark table has no finished parameter-efficient method")
    best_accuracy = max(r["accuracy"] for r in candidates)
    tied = [r for r in candidates if r["accuracy"] >= best_accuracy - TIE]
    best = min(tied, key=lambda r: (r["trainable"], -r["accuracy"]))
    others = [r for r in candidates if r is not best]
    return best, (max(others, key=lambda r: (r["accuracy"], -r["trainable"])) if others else None)


def recommend(task: str, rows: int, *, table: dict | None = None) -> Recommendation:
    check_task(task)
    table = table if table is not None else load_table()
    run = closest_run([r for r in table.get("runs", []) if r.get("task") == task], rows)
    if run is None:
        return Recommendation(
            FALLBACK,
            "No studio benchmark covers this task yet; LoRA is the most widely supported method and a safe start.",
        )
    best, runner_up = pick(run["results"])
    full = next((r for r in run["results"] if r["method"] == "full" and r.get("accuracy") is not None), None)
    size = "" if run["rows"] == rows else f" (the benchmarked size closest to your {rows:,})"
    top = max(
        (r for r in run["results"] if r.get("accuracy") is not None and r["method"] not in REFERENCE_POINTS),
        key=lambda r: r["accuracy"],
    )
    where = f"the parameter-efficient methods in the studio's benchmark at {run['rows']:,} training rows{size}"
    if top["accuracy"] <= best["accuracy"]:
        reason = (
            f"Best dev accuracy among {where}: {best['accuracy']:.1%} with {best['trainable']:,} trainable parameters"
        )
        if runner_up:
            reason += f"; next: {runner_up['method']} at {runner_up['accuracy']:.1%}"
    else:
        reason = (
            f"Within half a point of the best dev accuracy among {where} ({top['method']}, "
            f"{top['accuracy']:.1%}): {best['accuracy']:.1%} with {best['trainable']:,} trainable parameters "
            f"instead of {top['trainable']:,}"
        )
    if full:
        reason += f"; full fine-tuning: {full['accuracy']:.1%}"
    epochs = f"{run['epochs']} epoch{'s' if run['epochs'] != 1 else ''}"
    reason += f" ({run['benchmark']}, {epochs}, {run['date']}; docs/benchmarks.md)."
    return Recommendation(
        best["method"],
        reason,
        run["rows"],
        best["accuracy"],
        best["trainable"],
        runner_up["method"] if runner_up else None,
    )
