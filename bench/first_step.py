"""From "here is your job" to its first training step: a training child started for the job (cold) against one
started beforehand that has imported its libraries and waits for the spec on stdin (warm, jobs/warm_child.py),
next to the time the model load itself takes (from the child's own phase events).

    .venv/bin/python bench/first_step.py [--rows 200] [--repeat 3] [--json out.json] [--docs]

Each run is `python -m peftcore train --spec ...` on the bundled all-MiniLM-L6-v2 with the first --rows rows of
../shared/data/sst2/train.tsv (LoRA, one epoch, batch 16, no baseline evaluation, so the first step is not
held up by it); the clock starts when the spec is handed over (for cold, when the process is started) and stops
at the first progress event. The warm child is given 20 s to import before its spec arrives. "Model load" is
the time between the child's "loading the model" and "tokenizing" phases. Figures are medians over --repeat.
--docs writes the table into docs/benchmarks.md between its "first-step" markers.
"""

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_docs import write_between

REPO = Path(__file__).resolve().parent.parent
SST2 = REPO.parent / "shared" / "data" / "sst2" / "train.tsv"
MARKERS = ("<!-- first-step:start -->", "<!-- first-step:end -->")
WARM_WAIT_SECONDS = 20


def make_spec(folder: Path, rows: int) -> Path:
    sys.path.insert(0, str(REPO))
    from peftcore.cli import _spec_from_args, build_parser

    data = folder / "train.tsv"
    data.write_text("\n".join(SST2.read_text(encoding="utf-8").splitlines()[: rows + 1]) + "\n", encoding="utf-8")
    args = build_parser().parse_args(
        ["train", "--data", str(data), "--text-column", "sentence", "--label-column", "label", "--method", "lora"]
        + ["--out", str(folder / "out"), "--param", "epochs=1", "--param", "batch_size=16"]
        + ["--param", "baseline_eval=false"]
    )
    spec = _spec_from_args(args)
    path = folder / "spec.json"
    path.write_text(json.dumps(spec))
    return path


def run_once(spec: Path, warm: bool) -> dict:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "peftcore", "train", "--spec", "-" if warm else str(spec)]
    stdin = subprocess.PIPE if warm else subprocess.DEVNULL
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    if warm:
        time.sleep(WARM_WAIT_SECONDS)
        start = time.perf_counter()
        proc.stdin.write(f"{spec}\n")
        proc.stdin.close()
    marks = {}
    for line in proc.stdout:
        event = json.loads(line)
        now = time.perf_counter() - start
        if event.get("event") == "phase":
            marks.setdefault(event["phase"].split(" ")[0], now)
        elif event.get("event") == "progress":
            marks["first_step"] = now
            break
        elif event.get("event") == "error":
            raise SystemExit(f"the run failed: {event['message']}")
    proc.kill()
    proc.wait()
    return {"first_step_s": marks["first_step"], "model_load_s": marks["tokenizing"] - marks["loading"]}


def measure(rows: int, repeat: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="first-step-") as tmp:
        spec = make_spec(Path(tmp), rows)
        runs = {"cold": [], "warm": []}
        for _ in range(repeat):  # interleaved, so both see the same machine
            for mode in runs:
                runs[mode].append(run_once(spec, mode == "warm"))
                print(mode, json.dumps(runs[mode][-1]), flush=True)
    out = {"date": datetime.date.today().isoformat(), "rows": rows, "repeat": repeat}
    for mode, results in runs.items():
        out[mode] = {key: statistics.median(r[key] for r in results) for key in results[0]}
    return out


def table(result: dict) -> str:
    lines = [
        f"Run {result['date']}, `bench/first_step.py --rows {result['rows']} --repeat {result['repeat']}`; "
        "seconds, medians:",
        "",
        "| child | spec handed over -> first step | model load (inside it) | first step - model load |",
        "|---|---|---|---|",
    ]
    for mode in ("cold", "warm"):
        r = result[mode]
        lines.append(
            f"| {mode} | {r['first_step_s']:.1f} | {r['model_load_s']:.1f} | {r['first_step_s'] - r['model_load_s']:.1f} |"
        )
    ratio = result["warm"]["first_step_s"] / result["cold"]["first_step_s"]
    lines += ["", f"Warm / cold time to the first step: {ratio:.2f}."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--docs", action="store_true")
    args = parser.parse_args()
    result = measure(args.rows, args.repeat)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    print(table(result))
    if args.docs:
        write_between(MARKERS, table(result))


if __name__ == "__main__":
    main()
