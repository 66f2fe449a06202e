"""Every registered PEFT method on the bundled MiniLM with SST-2: trainable parameters, adapter size, peak memory,
speed and dev accuracy, one method after another, each at its defaults with seed 42.

    .venv/bin/python bench/methods.py [--rows 2000] [--epochs N] [--methods a,b,c] [--seed 42]
        [--dataset sst2|gsm8k-steps] [--json out.json] [--record]

--rows: training rows (a seeded shuffle of ../shared/data/sst2/train.tsv cut to this many; default 2000);
--epochs: passed to every method (default: not passed, so the training default, 3); --methods: comma-separated
names (default: every registered method); --json: also write the results there; --record: keep the accuracies in
peftcore/benchmark_table.json, from which the studio recommends a method per task and dataset size
(peftcore/recommend.py), one run per (size, dataset, seed); --seed and --dataset (gsm8k-steps: three labels made
from ../shared/data/gsm8k, scored on its 1,319 test rows) give that table the breadth a recommendation needs.

Each method trains in its own child process, exactly as a user would run it:

    python -m peftcore train --data ../shared/data/sst2/train.tsv --eval-data ../shared/data/sst2/dev.tsv
        --text-column sentence --label-column label --method M --param max_rows=ROWS [--param epochs=N]
        --param seed=42 --out TMP

so the peak resident memory is that child's own (ru_maxrss from os.wait4). The child's JSON events on stdout
give the trainable and total parameter counts (start), the steps (progress), the dev metrics and the training
time (done). Columns:

- trainable: the method's trainable parameters, classification head included; "x fewer than full": full
  fine-tuning's trainable count / the method's (full's count from its run here, or, when `full` is not in the
  run or failed, peftcore's meta-device count for `full` on the same model).
- adapter folder: every byte of the folder the run wrote (weights, configs, tokenizer, model card);
  weights: its .safetensors files alone.
- s/step: seconds per optimizer step, training only: the median time between consecutive progress events
  as this script receives them, leaving out the per-epoch evaluation on the dev set (the report's
  train_seconds includes it; train_seconds / steps is in the JSON as seconds_per_step_with_eval, the mean
  step time as seconds_per_step_mean). The median shrugs off short bursts of load from other work on a shared
  machine. "vs LoRA": s/step over LoRA's s/step in the same run; compare this column, not seconds.
- dev accuracy and macro-F1 after the last epoch, on all 872 rows of dev.tsv.

A method that fails shows its error kind and message instead of numbers, and the run goes on. The table goes to
stdout, one progress line per finished method to stderr. The script itself imports neither torch nor peftcore,
so it adds nothing to the children's memory.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_data import gsm8k_steps

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data" / "sst2"
MODEL = "bundled/all-MiniLM-L6-v2"
SEED = 42
DATASETS = {"sst2": "SST-2", "gsm8k-steps": "GSM8K steps (3 labels)"}
REFERENCE = "lora"  # speeds are given relative to this method
TABLE = REPO / "peftcore" / "benchmark_table.json"  # what the studio's recommended method is read from


def registry() -> list[dict]:
    """Every registered method (name, family, ...) with its meta-device trainable count on the bundled model."""
    out = subprocess.run(
        [sys.executable, "-m", "peftcore", "methods", "--json", "--model", MODEL],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def folder_bytes(folder: Path, suffix: str = "") -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and p.name.endswith(suffix))


def max_rss_mib(rusage) -> float:
    # ru_maxrss is in KiB on Linux, in bytes on macOS.
    return rusage.ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)


def run_method(name: str, rows: int, epochs: int | None, work: Path, seed: int, files: tuple[Path, Path]) -> dict:
    """Train one method in a child process; what it reported, its peak memory and its timings."""
    out = work / name
    command = [
        sys.executable,
        "-m",
        "peftcore",
        "train",
        "--data",
        str(files[0]),
        "--eval-data",
        str(files[1]),
        "--text-column",
        "sentence",
        "--label-column",
        "label",
        "--method",
        name,
        "--param",
        f"max_rows={rows}",
        "--param",
        f"seed={seed}",
        "--out",
        str(out),
    ]
    if epochs is not None:
        command[-2:-2] = ["--param", f"epochs={epochs}"]
    log = work / f"{name}.stderr"
    started = time.monotonic()
    events: list[tuple[float, dict]] = []  # (arrival time, event)
    with log.open("w") as stderr:
        child = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=stderr, text=True, bufsize=1)
        try:
            for line in child.stdout:  # the child flushes one JSON event per line
                if line.startswith("{"):
                    events.append((time.monotonic(), json.loads(line)))
            child.stdout.close()
            _, status, rusage = os.wait4(child.pid, 0)  # the child's own peak RSS, not this script's
            child.returncode = os.waitstatus_to_exitcode(status)
        finally:
            if child.returncode is None:
                child.kill()
                child.wait()
    wall = time.monotonic() - started
    result = {
        "method": name,
        "exit_code": child.returncode,
        "wall_seconds": round(wall, 1),
        "peak_rss_mib": round(max_rss_mib(rusage), 1),
        "ok": False,
    }
    by_kind: dict[str, list[tuple[float, dict]]] = {}
    for when, event in events:
        by_kind.setdefault(event.get("event"), []).append((when, event))
    if "start" in by_kind:
        start = by_kind["start"][0][1]
        result.update(trainable=start["trainable_params"], total=start["total_params"])
    if "done" not in by_kind:
        if "error" in by_kind:
            error = by_kind["error"][-1][1]
            result["error"] = {"kind": error["kind"], "message": error["message"]}
        else:
            lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
            result["error"] = {"kind": f"exit {child.returncode}", "message": lines[-1] if lines else "no output"}
        return result
    done = by_kind["done"][-1][1]
    report = done["report"]
    steps = by_kind["progress"][-1][1]["step"]
    # Training time per step without the evaluations: the gaps between consecutive events that end in a
    # progress event, except the first step after an evaluation (its gap contains the evaluation).
    step_gaps, previous = [], None
    for when, event in events:
        if event["event"] == "progress" and previous is not None and previous[1]["event"] in ("start", "progress"):
            step_gaps.append(when - previous[0])
        previous = (when, event)
    step_gaps.sort()
    middle = len(step_gaps) // 2
    median = step_gaps[middle] if len(step_gaps) % 2 else (step_gaps[middle - 1] + step_gaps[middle]) / 2
    adapter = Path(done["adapter_dir"])
    result.update(
        ok=True,
        steps=steps,
        train_seconds=report["train_seconds"],
        seconds_per_step=round(median, 4),
        seconds_per_step_mean=round(sum(step_gaps) / len(step_gaps), 4),
        seconds_per_step_with_eval=round(report["train_seconds"] / steps, 4),
        adapter_bytes=folder_bytes(adapter),
        weights_bytes=folder_bytes(adapter, ".safetensors"),
        accuracy=done["metrics"]["accuracy"],
        macro_f1=done["metrics"]["macro_f1"],
        train_rows=report["train_rows"],
        eval_rows=report["eval_rows"],
        epochs=report["params"]["epochs"],
        learning_rate=report["params"]["learning_rate"],
        method_params=report["method_params"],
    )
    return result


def size(n: int) -> str:
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}" if n < 100 * scale else f"{n / scale:.0f} {unit}"
    return f"{n} B"


def ratio(x: float | None) -> str:
    return "–" if x is None else f"{x:,.0f}" if x >= 10 else f"{x:.1f}"


def cell(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def table(results: list[dict]) -> str:
    head = [
        "method",
        "family",
        "trainable",
        "x fewer than full",
        "adapter folder",
        "weights",
        "peak RSS (MiB)",
        "s/step",
        "s/step vs LoRA",
        "dev accuracy",
        "macro-F1",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        if not r["ok"]:
            error = f"**failed** ({r['error']['kind']}): {cell(r['error']['message'])}"
            cells = [f"`{r['method']}`", r["family"], error] + ["–"] * (len(head) - 3)
        else:
            cells = [
                f"`{r['method']}`",
                r["family"],
                f"{r['trainable']:,}",
                ratio(r.get("fewer_than_full")),
                size(r["adapter_bytes"]),
                size(r["weights_bytes"]),
                f"{r['peak_rss_mib']:,.0f}",
                f"{r['seconds_per_step']:.3f}",
                f"{r['vs_lora']:.2f}" if r.get("vs_lora") is not None else "–",
                f"{r['accuracy']:.3f}",
                f"{r['macro_f1']:.3f}",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000, help="training rows (default 2000)")
    parser.add_argument("--epochs", type=int, help="epochs for every method (default: the training default)")
    parser.add_argument("--methods", help="comma-separated method names (default: every registered method)")
    parser.add_argument("--seed", type=int, default=SEED, help=f"seed of the row cut and training (default {SEED})")
    parser.add_argument(
        "--dataset",
        choices=("sst2", "gsm8k-steps"),
        default="sst2",
        help="gsm8k-steps: three labels made from ../shared/data/gsm8k (bench/bench_data.py)",
    )
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument(
        "--record",
        action="store_true",
        help="store this run's accuracies in peftcore/benchmark_table.json, the table the studio's "
        "recommended method is read from (replaces the run of the same size)",
    )
    args = parser.parse_args()
    began, today = time.monotonic(), datetime.date.today().isoformat()
    known = {m["name"]: m for m in registry()}
    names = [n.strip() for n in args.methods.split(",") if n.strip()] if args.methods else list(known)
    unknown = [n for n in names if n not in known]
    if unknown:
        parser.error(f"unknown method(s) {', '.join(unknown)}; registered: {', '.join(known)}")
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-methods-") as tmp:
        files = (DATA / "train.tsv", DATA / "dev.tsv") if args.dataset == "sst2" else gsm8k_steps(Path(tmp))
        for i, name in enumerate(names, 1):
            result = run_method(name, args.rows, args.epochs, Path(tmp), args.seed, files)
            result["family"] = known[name]["family"]
            result["counted_trainable"] = (known[name].get("count") or {}).get("trainable")
            results.append(result)
            shutil.rmtree(Path(tmp) / name, ignore_errors=True)  # full writes the whole model
            shown = (
                f"accuracy {result['accuracy']:.3f}, {result['seconds_per_step']:.3f} s/step"
                if result["ok"]
                else f"FAILED ({result['error']['kind']}): {cell(result['error']['message'], 200)}"
            )
            print(
                f"[{i}/{len(names)}] {name}: {shown}; {result['wall_seconds']:.0f} s "
                f"(elapsed {time.monotonic() - began:.0f} s)",
                file=sys.stderr,
                flush=True,
            )

    by_name = {r["method"]: r for r in results}
    full = by_name.get("full")
    if full and full["ok"]:
        full_trainable, source = full["trainable"], "the full run"
    elif (known.get("full") or {}).get("count"):
        full_trainable, source = known["full"]["count"]["trainable"], "peftcore's meta-device count for full"
    else:  # no count: every weight of the model, as a run reports it
        full_trainable = min((r["total"] for r in results if "total" in r), default=None)
        source = "the smallest total_params reported"
    reference = by_name.get(REFERENCE)
    reference_step = reference["seconds_per_step"] if reference and reference["ok"] else None
    for r in results:
        if r["ok"]:
            r["fewer_than_full"] = full_trainable / r["trainable"] if full_trainable else None
            r["vs_lora"] = round(r["seconds_per_step"] / reference_step, 3) if reference_step else None
    if reference_step is None:
        print(f"note: {REFERENCE} is not in this run (or failed): no 'vs LoRA' column", file=sys.stderr)

    print(table(results))
    wall = time.monotonic() - began
    print(f"done in {wall:.0f} s ({len(results)} methods, {sum(not r['ok'] for r in results)} failed)", file=sys.stderr)
    if args.json:
        summary = {
            "date": today,
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "model": MODEL,
            "dataset": args.dataset,
            "rows": args.rows,
            "epochs": args.epochs,
            "seed": args.seed,
            "full_trainable": full_trainable,
            "full_trainable_from": source,
            "speed_reference": REFERENCE,
            "wall_seconds": round(wall, 1),
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
            "results": results,
        }
        args.json.write_text(json.dumps(summary, indent=1))
    if args.record:
        record(args.rows, args.epochs, today, results, args.dataset, args.seed)


def record(rows: int, epochs: int | None, today: str, results: list[dict], dataset: str, seed: int) -> None:
    """Keep this run in the recommendation table, one run per training size; a method that failed is kept
    with its error kind so the table says why it is missing from the choice."""
    table = json.loads(TABLE.read_text()) if TABLE.exists() else {"runs": []}
    run = {
        "task": "text-classification",
        "benchmark": f"{DATASETS[dataset]} on {MODEL.split('/')[-1]}, seed {seed}",
        "dataset": dataset,
        "seed": seed,
        "rows": rows,
        "epochs": next((r["epochs"] for r in results if r["ok"]), epochs),
        "date": today,
        "command": " ".join(["bench/methods.py", *sys.argv[1:]]),
        "results": [
            {"method": r["method"], "accuracy": round(r["accuracy"], 4), "trainable": r["trainable"]}
            if r["ok"]
            else {"method": r["method"], "failed": r["error"]["kind"]}
            for r in results
        ],
    }
    # one run per (size, dataset, seed): the recommendation wants several datasets and seeds (recommend.py)
    same = ("rows", "dataset", "seed")
    kept = [r for r in table["runs"] if tuple(r.get(k) for k in same) != tuple(run[k] for k in same)]
    table["runs"] = sorted(kept + [run], key=lambda r: (r["rows"], r.get("dataset") or "", r.get("seed") or 0))
    TABLE.write_text(json.dumps(table, indent=1) + "\n")
    print(f"recorded in {TABLE.relative_to(REPO)}", file=sys.stderr)


if __name__ == "__main__":
    main()
