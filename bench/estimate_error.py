"""How far the job form's time estimate is from the truth: a handful of LoRA runs of different sizes on SST-2 with
the bundled model, each estimated as the form would have, from the other runs only (their measured tokens per
second, the way jobs/estimates.py calibrates from a team's finished jobs), against its measured training time.

    .venv/bin/python bench/estimate_error.py [--json out.json] [--docs]

Each run is `python -m peftcore train` on a seeded cut of ../shared/data/sst2/train.tsv with its settings given
(rows, batch, max length, epochs; no early stop, no baseline evaluation); its time is the report's
train_seconds (training and the evaluation after each epoch). The estimate is peftcore/estimates.py's work in
tokens (the rows' mean length after truncation, from their lengths as a worker's TokenStats counts them) over
the median end-to-end rate of the other runs (their work over their whole training time, evaluations included:
peftcore.estimates.run_rate). Goal (issue 20): median error within 25%. --docs writes the table between the
"estimate" markers.
"""

import argparse
import datetime
import json
import statistics
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from bench_docs import write_between

REPO = Path(__file__).resolve().parent.parent
SST2 = REPO.parent / "shared" / "data" / "sst2" / "train.tsv"
MARKERS = ("<!-- estimate:start -->", "<!-- estimate:end -->")
# (rows, batch, max length, epochs): sizes a user picks, from a quick try to a longer run
GRID = [(300, 16, 32, 2), (600, 32, 64, 1), (1000, 16, 64, 1), (1000, 32, 32, 2), (1500, 32, 48, 1), (2000, 64, 64, 1)]


def run(rows: int, batch: int, length: int, epochs: int, folder: Path) -> dict:
    params = {"max_rows": rows, "batch_size": batch, "max_length": length, "epochs": epochs}
    params.update(patience=0, baseline_eval="false", seed=7)
    command = [sys.executable, "-m", "peftcore", "train", "--data", str(SST2), "--text-column", "sentence"]
    command += ["--label-column", "label", "--method", "lora", "--out", str(folder)]
    command += [part for key, value in params.items() for part in ("--param", f"{key}={value}")]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    finished = next((e for e in events if e.get("event") == "done"), None)
    if finished is None:
        raise SystemExit(f"the run {params} failed: {done.stderr[-800:]}")
    report = finished["report"]
    return {
        "rows": rows,
        "batch": batch,
        "max_length": length,
        "epochs": epochs,
        "train_rows": report["train_rows"],
        "eval_rows": report["eval_rows"],
        "seconds": report["train_seconds"],
        "train_tokens": report["efficiency"]["train_tokens"],
        "steps": report["steps"],
    }


def length_histogram(rows: int, tokenizer) -> dict:
    """The token lengths of the first rows, as a worker's TokenStats counts them ({length: rows})."""
    lines = SST2.read_text(encoding="utf-8").splitlines()[1 : rows + 1]
    return dict(Counter(len(tokenizer(line.split("\t")[0])["input_ids"]) for line in lines))


def measure() -> dict:
    sys.path.insert(0, str(REPO))
    from transformers import AutoTokenizer

    from peftcore.estimates import run_rate, tokens_per_row, train_steps, work_tokens
    from peftcore.models import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model("bundled/all-MiniLM-L6-v2", model_root=None))
    with tempfile.TemporaryDirectory(prefix="estimate-") as tmp:
        runs = [run(*settings, Path(tmp) / f"run-{i}") for i, settings in enumerate(GRID)]
    for r in runs:  # each run's end-to-end rate, as jobs/estimates.py measures a finished job's
        r["rate"] = run_rate(
            train_seconds=r["seconds"],
            train_tokens=r["train_tokens"],
            steps=r["steps"],
            batch_size=r["batch"],
            eval_rows=r["eval_rows"],
            steps_per_epoch=train_steps(r["train_rows"], r["batch"], 1),
        )
    for i, r in enumerate(runs):
        rate = statistics.median(other["rate"] for j, other in enumerate(runs) if j != i)
        row_tokens = tokens_per_row(r["max_length"], length_histogram(r["rows"], tokenizer))
        steps = train_steps(r["train_rows"], r["batch"], r["epochs"])
        work = work_tokens(
            steps=steps, batch_size=r["batch"], row_tokens=row_tokens, epochs=r["epochs"], eval_rows=r["eval_rows"]
        )
        r["estimate"] = work / rate
        r["error"] = (r["estimate"] - r["seconds"]) / r["seconds"]
        print(json.dumps(r), flush=True)
    return {"date": datetime.date.today().isoformat(), "runs": runs}


def table(result: dict) -> str:
    errors = [abs(r["error"]) for r in result["runs"]]
    lines = [
        f"Run {result['date']}, `bench/estimate_error.py`; each run estimated from the others only:",
        "",
        "| rows | batch | max length | epochs | measured | estimated | error |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["runs"]:
        lines.append(
            f"| {r['rows']:,} | {r['batch']} | {r['max_length']} | {r['epochs']} | {r['seconds']:.0f} s | "
            f"{r['estimate']:.0f} s | {r['error']:+.0%} |"
        )
    lines += ["", f"Median absolute error: {statistics.median(errors):.0%} (goal: within 25%)."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--docs", action="store_true")
    parser.add_argument("--from-json", type=Path, help="write the table of an earlier run's --json instead of running")
    args = parser.parse_args()
    result = json.loads(args.from_json.read_text()) if args.from_json else measure()
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    print(table(result))
    if args.docs:
        write_between(MARKERS, table(result))


if __name__ == "__main__":
    main()
