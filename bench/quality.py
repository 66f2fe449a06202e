"""Do the form's defaults win? The studio's defaults (nothing set but the row limit and the seed) on SST-2 at
several training sizes and seeds, for LoRA, IA3, RED and the recommended method, next to the hand-tuned plain
transformers + peft script (bench/plain_lora.py) in the same run; every figure is accuracy on all 872 rows of
../shared/data/sst2/dev.tsv, with its 95% interval.

    .venv/bin/python bench/quality.py [--rows 300,2000,8000] [--seeds 1,2] [--methods lora,ia3,red,recommended]
        [--dataset sst2|gsm8k-steps] [--no-plain] [--param KEY=VALUE ...] [--json out.json] [--docs]

--dataset gsm8k-steps: a second classification task made from ../shared/data/gsm8k, with three labels: from a
maths word problem's text, how many reasoning steps its worked solution takes (2, 3, 4 or more; about a third
each), trained on a cut of train.jsonl and scored on all 1,319 rows of test.jsonl. It checks that the defaults
hold beyond SST-2 and beyond two labels (the plain script is SST-2's, so it is skipped there).

Each run is `python -m peftcore train --data train.tsv --eval-data dev.tsv --text-column sentence --label-column
label --method M --param max_rows=ROWS --param seed=SEED` in its own process: a seeded cut of the training file
(each seed a different subset), every other setting left to the studio's defaults (peftcore/defaults.py), which
evaluate on the evaluation file after each epoch, keep the best epoch and stop early. --param adds settings to
every studio run (for experiments; the published table has none). --docs writes the table into
docs/benchmarks.md between its "quality" markers. A run's time is its training time (the report's
train_seconds); the plain script's is measured the same way, in the same run, on the same machine.
"""

import argparse
import datetime
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_data import gsm8k_steps
from bench_docs import write_between

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data" / "sst2"
MARKERS = ("<!-- quality:start -->", "<!-- quality:end -->")


def wilson(share: float, rows: int) -> tuple[float, float]:
    z = 1.959964
    centre = (share + z * z / (2 * rows)) / (1 + z * z / rows)
    half = z * math.sqrt(share * (1 - share) / rows + z * z / (4 * rows * rows)) / (1 + z * z / rows)
    return centre - half, centre + half


def recommended(rows: int) -> str:
    sys.path.insert(0, str(REPO))
    from peftcore.recommend import recommend

    return recommend("text-classification", rows).method


def studio_run(method: str, rows: int, seed: int, extra: list[str], workdir: Path, files: tuple[Path, Path]) -> dict:
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
        method,
        "--param",
        f"max_rows={rows}",
        "--param",
        f"seed={seed}",
        *[part for item in extra for part in ("--param", item)],
        "--out",
        str(workdir / f"{method}-{rows}-{seed}"),
    ]
    out = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    events = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    done = next((e for e in events if e.get("event") == "done"), None)
    if done is None:
        error = next((e for e in events if e.get("event") == "error"), {"message": out.stderr[-500:]})
        return {"method": method, "rows": rows, "seed": seed, "error": error.get("message")}
    report = done["report"]
    return {
        "method": method,
        "rows": rows,
        "seed": seed,
        "accuracy": report["metrics"]["accuracy"],
        "trainable": report["trainable_params"],
        "seconds": report["train_seconds"],
        "epochs_run": (report.get("best") or {}).get("epoch"),
        "steps": report.get("steps"),
        "params": {k: report["params"][k] for k in ("epochs", "batch_size", "max_length", "learning_rate")},
        "warnings": [w["kind"] for w in report.get("warnings", [])],
        "per_epoch": [e["metrics"]["accuracy"] for e in events if e.get("event") == "eval" and e["epoch"]],
        "density": report.get("activation_density"),  # with --param measure_density=true or density_loss=W
        "efficiency": report.get("efficiency") or {},  # peak memory (the child's), optimiser state bytes
        "pruning": report.get("pruning"),  # with --param prune_ranks=S (Light-PEFT)
        "base_pruning": report.get("base_pruning"),  # with --param prune_heads=S / prune_channels=S
    }


def plain_run(rows: int, seed: int) -> dict:
    out = subprocess.run(
        [sys.executable, str(REPO / "bench" / "plain_lora.py"), "--rows", str(rows), "--seed", str(seed)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if not lines:
        return {"method": "plain script", "rows": rows, "seed": seed, "error": out.stderr[-500:]}
    result = json.loads(lines[-1])
    return {"method": "plain script", "trainable": 664_322, **result}


def table(results: list[dict], sizes: list[int], methods: list[str], dev_rows: int) -> str:
    lines = [
        "| run | trainable | " + " | ".join(f"{rows:,} rows" for rows in sizes) + " |",
        "|---|---|" + "---|" * len(sizes),
    ]
    for method in methods:
        cells, trainable = [], ""
        for rows in sizes:
            runs = [r for r in results if r["method"] == method and r["rows"] == rows]
            if not runs:
                cells.append("")
                continue
            good = [r for r in runs if "accuracy" in r]
            trainable = trainable or (f"{good[0]['trainable']:,}" if good else "")
            parts = []
            for r in runs:
                if "accuracy" not in r:
                    parts.append(f"failed ({r['error'][:60]})")
                    continue
                low, high = wilson(r["accuracy"], dev_rows)
                minutes = r["seconds"] / 60
                parts.append(f"{r['accuracy']:.1%} [{low:.1%}, {high:.1%}] {minutes:.1f} min")
            mean = sum(r["accuracy"] for r in good) / len(good) if good else None
            head = f"**{mean:.1%}** mean; " if mean is not None and len(good) > 1 else ""
            cells.append(head + "; ".join(parts))
        label = method if method != "plain script" else "plain transformers + peft script, hand-tuned"
        lines.append(f"| {label} | {trainable} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="300,2000,8000")
    parser.add_argument("--seeds", default="1,2")
    parser.add_argument("--methods", default="lora,ia3,red,recommended")
    parser.add_argument("--dataset", choices=("sst2", "gsm8k-steps"), default="sst2")
    parser.add_argument("--no-plain", action="store_true")
    parser.add_argument("--param", action="append", default=[])
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--from-json", help="comma-separated result files of earlier runs: tabulate them instead of training"
    )
    parser.add_argument("--docs", action="store_true")
    args = parser.parse_args()
    sizes = [int(v) for v in args.rows.split(",")]
    seeds = [int(v) for v in args.seeds.split(",")]
    wanted = args.methods.split(",")
    results, began = [], time.monotonic()
    if args.from_json:  # a table of runs made in parts (each part's JSON), e.g. one size at a time
        results = [r for name in args.from_json.split(",") for r in json.loads(Path(name).read_text())]
        sizes = sorted({r["rows"] for r in results})
    with tempfile.TemporaryDirectory(prefix="quality-") as tmp:
        if args.dataset == "sst2":
            files, dev_rows = (DATA / "train.tsv", DATA / "dev.tsv"), 872
        else:
            files, dev_rows, args.no_plain = gsm8k_steps(Path(tmp)), 1319, True
        for rows in [] if args.from_json else sizes:
            methods = list(dict.fromkeys(recommended(rows) if m == "recommended" else m for m in wanted))
            for seed in seeds:
                for method in methods:
                    result = studio_run(method, rows, seed, args.param, Path(tmp), files)
                    result["recommended"] = method == recommended(rows)
                    results.append(result)
                    print(json.dumps(result), file=sys.stderr, flush=True)
                if not args.no_plain:
                    result = plain_run(rows, seed)
                    results.append(result)
                    print(json.dumps(result), file=sys.stderr, flush=True)
    shown = list(dict.fromkeys(r["method"] for r in results))
    text = table(results, sizes, shown, dev_rows)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    if args.docs:
        seeds_run = ",".join(str(s) for s in sorted({r["seed"] for r in results}))
        stamp = f"Run {datetime.date.today()} ({(time.monotonic() - began) / 60:.0f} min wall), seeds {seeds_run}:"
        markers = tuple(m.replace("quality", f"quality-{args.dataset}") for m in MARKERS)
        write_between(markers, f"{stamp}\n\n{text}")


if __name__ == "__main__":
    main()
