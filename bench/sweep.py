"""Learning-rate / epoch / parameter sweep for one or more methods on the bundled MiniLM with SST-2: the tool
behind each method's defaults (docs/benchmarks.md, "Tuning the defaults").

    .venv/bin/python bench/sweep.py --method lora --lr 1e-3,2e-3 --epochs 5 [--param placement=both]
        [--rows 2000] [--json out.jsonl]

Every combination of --lr values (and of --param values given as name=a|b) trains once in its own child
process through `python -m peftcore train`, evaluated on all of ../shared/data/sst2/dev.tsv after every
epoch; one line per run goes to stdout (and, with --json, one JSON object per line to that file) with the dev
accuracy after each epoch. Seed 42 throughout, so a run repeats exactly.
"""

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data" / "sst2"


def train(
    method: str, lr: float | None, epochs: int, rows: int, method_params: dict, training: dict, work: Path
) -> dict:
    command = [
        sys.executable,
        "-m",
        "peftcore",
        "train",
        "--data",
        str(DATA / "train.tsv"),
        "--eval-data",
        str(DATA / "dev.tsv"),
        "--text-column",
        "sentence",
        "--label-column",
        "label",
        "--method",
        method,
        "--param",
        f"max_rows={rows}",
        "--param",
        "seed=42",
        "--param",
        f"epochs={epochs}",
        "--out",
        str(work),
    ]
    if lr is not None:
        command += ["--param", f"learning_rate={lr}"]
    for key, value in training.items():
        command += ["--param", f"{key}={value}"]
    for key, value in method_params.items():
        command += ["--param", f"{key}={value}"]
    started = time.monotonic()
    out = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    events = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    result = {
        "method": method,
        "lr": lr,
        "epochs": epochs,
        "rows": rows,
        "method_params": method_params,
        "training": training,
        "seconds": round(time.monotonic() - started, 1),
    }
    start = next((e for e in events if e["event"] == "start"), None)
    if start:
        result["trainable"] = start["trainable_params"]
    evals = [e for e in events if e["event"] == "eval"]
    result["accuracy_before_training"] = next(
        (round(e["metrics"]["accuracy"], 4) for e in evals if e["epoch"] == 0), None
    )
    result["accuracy_by_epoch"] = [round(e["metrics"]["accuracy"], 4) for e in evals if e["epoch"] > 0]
    error = next((e for e in events if e["event"] == "error"), None)
    if error or out.returncode:
        result["error"] = error["message"] if error else out.stderr.strip().splitlines()[-1:]
    return result


def parse_grid(items: list[str]) -> dict[str, list[str]]:
    grid = {}
    for item in items:
        key, _, values = item.partition("=")
        grid[key] = values.split("|")
    return grid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", required=True, help="comma-separated method names")
    parser.add_argument("--lr", default="", help="comma-separated learning rates (default: the method's own)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--param", action="append", default=[], help="method parameter grid: name=a|b")
    parser.add_argument("--train-param", action="append", default=[], help="training parameter grid: name=a|b")
    parser.add_argument("--json", type=Path, help="append one JSON line per run to this file")
    args = parser.parse_args()
    rates = [float(v) for v in args.lr.split(",") if v] or [None]
    method_grid, training_grid = parse_grid(args.param), parse_grid(args.train_param)
    for method in args.method.split(","):
        for lr in rates:
            for mvalues in itertools.product(*method_grid.values()):
                for tvalues in itertools.product(*training_grid.values()):
                    with tempfile.TemporaryDirectory() as work:
                        result = train(
                            method,
                            lr,
                            args.epochs,
                            args.rows,
                            dict(zip(method_grid, mvalues)),
                            dict(zip(training_grid, tvalues)),
                            Path(work),
                        )
                    print(json.dumps(result), flush=True)
                    if args.json:
                        with args.json.open("a") as out:
                            out.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
