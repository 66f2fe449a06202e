"""Two tasks in one dataset (issue 22: Poly and multitask prompt tuning with a task per group), on the bundled
model, measured on real data.

    .venv/bin/python bench/multitask.py [--rows 500] [--eval-rows 436] [--seed 42]
                                        [--methods lora,poly,multitask_prompt_tuning] [--json out.json] [--docs]

The training file mixes two classification tasks with the same two labels and a `task` column: `sentiment`
(SST-2: a seeded cut of ../shared/data/sst2/train.tsv) and `money` (GSM8K questions: 1 when the problem deals in
dollars, its "$" removed so the words must tell; bench/combine_adapters.py), --rows of each. The evaluation file
holds the first --eval-rows SST-2 dev rows and as many GSM8K test questions, with their task.

Each method is trained with the studio's defaults (`python -m peftcore train`, nothing set but the seed) three
ways: one adapter for all rows (the task column unused), one adapter per task (`--group-column task`: a LoRA per
task, or Poly/MPT with a task per group: one adapter whose tasks are the two), and every adapter is scored on each
task's evaluation rows (a group's rows through its own adapter or task). --docs writes the table into
docs/benchmarks.md between its "multitask" markers.
"""

import argparse
import csv
import datetime
import json
import random
import sys
import tempfile
from pathlib import Path

from bench_data import train_classifier
from bench_docs import write_between
from combine_adapters import accuracy, money_task, sst2_files

REPO = Path(__file__).resolve().parent.parent
MARKERS = ("<!-- multitask:start -->", "<!-- multitask:end -->")


def _rows(path: Path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def mixed_files(folder: Path, rows: int, eval_rows: int, seed: int) -> tuple[Path, Path]:
    sst2_train, sst2_dev = sst2_files(folder)
    money_train, money_test = money_task(folder)
    rng = random.Random(seed)
    train = [{**r, "task": "sentiment"} for r in rng.sample(_rows(sst2_train), rows)]
    train += [{**r, "task": "money"} for r in rng.sample(_rows(money_train), rows)]
    rng.shuffle(train)
    evaluation = [{**r, "task": "sentiment"} for r in _rows(sst2_dev)[:eval_rows]]
    evaluation += [{**r, "task": "money"} for r in _rows(money_test)[:eval_rows]]
    paths = folder / "mixed-train.csv", folder / "mixed-eval.csv"
    for path, records in zip(paths, (train, evaluation)):
        with open(path, "w", encoding="utf-8", newline="") as out:
            writer = csv.DictWriter(out, fieldnames=["sentence", "label", "task"])
            writer.writeheader()
            writer.writerows(records)
    return paths


def train(method: str, grouped: bool, files: tuple[Path, Path], seed: int, workdir: Path) -> dict:
    out = workdir / f"{method}-{'grouped' if grouped else 'one'}"
    return train_classifier(files, method, out, "--param", f"seed={seed}", *(["--group-column", "task"] * grouped))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=500, help="training rows of each task")
    parser.add_argument(
        "--eval-rows", type=int, default=436, help="evaluation rows of each task (872: all of SST-2 dev)"
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--methods", default="lora,poly,multitask_prompt_tuning")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--docs", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))  # peftcore, for scoring
    began = datetime.datetime.now()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        files = mixed_files(workdir, args.rows, args.eval_rows, args.seed)
        evaluation = _rows(files[1])
        by_task = {task: [r for r in evaluation if r["task"] == task] for task in ("sentiment", "money")}
        for method in args.methods.split(","):
            for grouped in (False, True):
                done = train(method, grouped, files, args.seed, workdir)
                report, adapter = done["report"], Path(done["adapter_dir"])
                scores = {task: accuracy(adapter, rows, task if grouped else None) for task, rows in by_task.items()}
                results.append(
                    {
                        "method": method,
                        "grouped": grouped,
                        "task_per_group": bool(report.get("task_per_group")),
                        "scores": scores,
                        "trainable": report["trainable_params"],
                        "adapters": len(report["groups"]) if grouped and not report.get("task_per_group") else 1,
                        "train_seconds": report.get("train_seconds"),
                    }
                )
                print(json.dumps(results[-1]), file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1), encoding="utf-8")
    minutes = (datetime.datetime.now() - began).total_seconds() / 60
    text = render(results, args, minutes)
    print(text)
    if args.docs:
        write_between(MARKERS, text)


def render(results: list[dict], args, minutes: float) -> str:
    lines = [
        f"Run {datetime.date.today().isoformat()} ({minutes:.0f} min wall), `bench/multitask.py --rows {args.rows} "
        f"--eval-rows {args.eval_rows} --seed {args.seed}`: all-MiniLM-L6-v2, form defaults, {args.rows:,} training "
        f"rows of each task, scored on {args.eval_rows} evaluation rows of each (CPU):",
        "",
        "| method | adapters | sentiment (SST-2 dev) | money (GSM8K test) | mean | trainable weights | train time |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if not r["grouped"]:
            shape = "one for both tasks"
        elif r["task_per_group"]:
            shape = "one, a task per group"
        else:
            shape = f"{r['adapters']}, one per task"
        scores = r["scores"]
        mean = sum(scores.values()) / len(scores)
        trainable = r["trainable"] * r["adapters"]
        seconds = r["train_seconds"] or 0
        lines.append(
            f"| {r['method']} | {shape} | {scores['sentiment']:.1%} | {scores['money']:.1%} | {mean:.1%} | "
            f"{trainable:,} | {seconds / 60:.1f} min |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
