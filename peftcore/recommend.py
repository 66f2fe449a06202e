"""The recommended method for a task and a dataset size, read from the studio's own benchmark table, and how
sure that recommendation is.

`benchmark_table.json` (beside this file) is written by `bench/methods.py --record`: per run (a task, a dataset,
a training size and a seed) every method's dev accuracy and trainable count at its defaults. At the benchmarked
size closest to the user's (on a log scale) the runs there are the evidence. LoRA is the default; another
parameter-efficient method is recommended only when the evidence is broad (at least MIN_SEEDS seeds and
MIN_DATASETS datasets) and it beat LoRA in every one of those runs, by more than TIE on average. One dataset
and one seed can crown a method by luck (docs/benchmarks.md shows how much seeds move a figure), so with no
clear winner the recommendation is LoRA, and the reason says why. No rule here names another method.
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
MIN_SEEDS = 2
MIN_DATASETS = 2


@dataclass(frozen=True)
class Recommendation:
    method: str
    reason: str
    benchmark_rows: int | None = None  # the benchmarked size the choice comes from
    accuracy: float | None = None  # the method's mean accuracy over the runs at that size
    trainable: int | None = None
    runner_up: str | None = None
    confidence: str = "no benchmark"  # "clear winner", "no clear winner" or "no benchmark"
    runs: int = 0  # the benchmark runs at that size (datasets x seeds)

    def as_json(self) -> dict:
        return asdict(self)


@lru_cache(maxsize=1)
def _table() -> dict:
    return json.loads(TABLE.read_text()) if TABLE.exists() else {"runs": []}


def load_table() -> dict:
    return _table()


def closest_size(sizes: list[int], rows: int) -> int | None:
    """The benchmarked size nearest to `rows` on a log scale (ties: the larger size)."""
    if not sizes:
        return None
    target = math.log(max(rows, 1))
    return min(sizes, key=lambda size: (abs(math.log(size) - target), -size))


def _finished(run: dict) -> dict[str, dict]:
    return {
        r["method"]: r for r in run["results"] if r.get("accuracy") is not None and r["method"] not in REFERENCE_POINTS
    }


def summarise(runs: list[dict]) -> list[dict]:
    """Per parameter-efficient method measured in every run: mean accuracy, trainable count, and against LoRA
    in the same runs the mean difference and how many runs it won; best mean first."""
    per_run = [_finished(run) for run in runs]
    common = set.intersection(*(set(found) for found in per_run)) if per_run else set()
    rows = []
    for method in common:
        accuracies = [found[method]["accuracy"] for found in per_run]
        row = {
            "method": method,
            "accuracy": sum(accuracies) / len(accuracies),
            "trainable": per_run[0][method].get("trainable"),
        }
        if FALLBACK in common:
            gaps = [found[method]["accuracy"] - found[FALLBACK]["accuracy"] for found in per_run]
            row.update(gain=sum(gaps) / len(gaps), wins=sum(g > 0 for g in gaps))
        rows.append(row)
    return sorted(rows, key=lambda r: (-r["accuracy"], r["trainable"] or 0))


def recommend(task: str, rows: int, *, table: dict | None = None) -> Recommendation:
    check_task(task)
    table = table if table is not None else load_table()
    task_runs = [r for r in table.get("runs", []) if r.get("task") == task and _finished(r)]
    size = closest_size(sorted({r["rows"] for r in task_runs}), rows)
    if size is None:
        return Recommendation(
            FALLBACK,
            "No studio benchmark covers this task yet; LoRA is the most widely supported method and a safe start.",
        )
    runs = [r for r in task_runs if r["rows"] == size]
    ranked = summarise(runs)
    seeds = {r.get("seed") for r in runs}
    datasets = {r.get("dataset") or r.get("benchmark") for r in runs}
    where = f"{len(runs)} benchmark run(s) at {size:,} training rows"
    if size != rows:
        where += f" (the benchmarked size closest to your {rows:,})"
    where += f": {len(datasets)} dataset(s) x {len(seeds)} seed(s)"
    lora = next((r for r in ranked if r["method"] == FALLBACK), None)
    clear = [r for r in ranked if r["method"] != FALLBACK and r.get("wins") == len(runs) and r.get("gain", 0) > TIE]
    broad = len(seeds) >= MIN_SEEDS and len(datasets) >= MIN_DATASETS
    source = f" (docs/benchmarks.md; {runs[0].get('command') or 'bench/methods.py'})"
    if broad and clear and lora:
        best = clear[0]
        return Recommendation(
            best["method"],
            f"Clear winner in {where}: better than LoRA in every run, by {best['gain']:.1%} on average "
            f"({best['accuracy']:.1%} mean accuracy with {best['trainable']:,} trainable parameters){source}.",
            size,
            best["accuracy"],
            best["trainable"],
            FALLBACK,
            "clear winner",
            len(runs),
        )
    top = ranked[0] if ranked else None
    if not broad:
        why = (
            f"too little evidence for anything else: a winner needs at least {MIN_DATASETS} datasets and "
            f"{MIN_SEEDS} seeds"
        )
    elif top and top["method"] != FALLBACK:
        why = (
            f"no method beat it in every run (the best mean, {top['method']}, won {top.get('wins', 0)} of {len(runs)})"
        )
    else:
        why = "it has the best mean accuracy"
    if top and top["method"] != FALLBACK:
        why += f"; best mean there: {top['method']} at {top['accuracy']:.1%}"
    return Recommendation(
        FALLBACK,
        f"LoRA, the safe default: in {where}, {why}"
        + (f"; LoRA: {lora['accuracy']:.1%}" if lora else "")
        + f"{source}.",
        size,
        lora["accuracy"] if lora else None,
        lora["trainable"] if lora else None,
        top["method"] if top and top["method"] != FALLBACK else None,
        "no clear winner",
        len(runs),
    )
