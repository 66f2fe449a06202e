"""Preference tuning (DPO, ORPO or KTO) of the bundled Gemma 3 270M on pairs made from GSM8K: the prompt is a word problem, the
chosen answer states its right final number ("The answer is 72."), the rejected one a wrong number (the right one
plus a seeded offset of 1 to 9). The studio's own job (`--task preference`, LoRA), scored on held-out pairs from
GSM8K's test file before and after training: pairs ranked right (reward accuracy), the reward margin, and how
often the adapter's greedy answer is exactly the chosen one.

    .venv/bin/python bench/dpo.py [--rows 64] [--eval-rows 32] [--epochs 1] [--loss dpo|orpo|kto] [--docs]

--docs writes the table between the "dpo", "orpo" or "kto" markers of docs/benchmarks.md (one table per loss).

A CPU-sized run (short answers keep each step to seconds); the model is converted once (peftcore/gemma_bundle.py)
into --model-root (default: the tests' cache).
"""

import argparse
import datetime
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_docs import write_between

REPO = Path(__file__).resolve().parent.parent
GSM8K = REPO.parent / "shared" / "data" / "gsm8k"
DEFAULT_ROOT = Path.home() / ".cache" / "peft-studio-tests" / "models"
SEED = 42


def pairs(source: Path, rows: int, out: Path) -> Path:
    rng = random.Random(SEED)
    lines = []
    for line in source.read_text(encoding="utf-8").splitlines()[:rows]:
        record = json.loads(line)
        right = record["answer"].rsplit("####", 1)[1].strip().replace(",", "")
        wrong = str(int(float(right)) + rng.randint(1, 9))
        prompt = record["question"] + "\nGive the final number only."
        lines.append({"prompt": prompt, "chosen": f"The answer is {right}.", "rejected": f"The answer is {wrong}."})
    out.write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    return out


def studio(args, train: Path, evaluation: Path, out: Path) -> dict:
    command = [sys.executable, "-m", "peftcore", "train", "--task", "preference", "--model", "bundled/gemma-3-270m"]
    command += ["--model-root", str(args.model_root), "--data", str(train), "--eval-data", str(evaluation)]
    command += ["--text-column", "prompt", "--label-column", "chosen", "--input-column", "rejected"]
    command += ["--method", "lora", "--out", str(out)]
    settings = (f"epochs={args.epochs}", "batch_size=8", "max_length=192", f"learning_rate={args.lr}", "seed=42")
    for item in (*settings, f"preference_loss={args.loss}"):
        command += ["--param", item]
    began = time.monotonic()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    final = next((e for e in events if e.get("event") == "done"), None)
    if final is None:
        error = next((e for e in events if e.get("event") == "error"), {"message": done.stderr[-800:]})
        raise SystemExit(f"the preference job failed: {error.get('message')}")
    return {"report": final["report"], "wall_seconds": time.monotonic() - began}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--eval-rows", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--loss", choices=("dpo", "orpo", "kto"), default="dpo")
    parser.add_argument("--model-root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--docs", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from peftcore import gemma_bundle

    gemma_bundle.prepare(args.model_root)
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        train = pairs(GSM8K / "train.jsonl", args.rows, work / "train.jsonl")
        evaluation = pairs(GSM8K / "test.jsonl", args.eval_rows, work / "test.jsonl")
        result = studio(args, train, evaluation, work / "out")
    report = result["report"]
    after, before = report["metrics"], report["baseline_metrics"]
    rows = [
        ("pairs ranked right (reward accuracy)", "reward_accuracy", "{:.1%}"),
        ("mean reward margin", "reward_margin", "{:.3f}"),
        (f"{args.loss.upper()} loss", "eval_loss", "{:.3f}"),
        ("greedy answer = the chosen one (exact match)", "exact_match", "{:.1%}"),
    ]
    lines = [
        f"Run {datetime.date.today().isoformat()}, `bench/dpo.py --rows {args.rows} --eval-rows {args.eval_rows} "
        f"--epochs {args.epochs} --lr {args.lr} --loss {args.loss}`: LoRA on the bundled Gemma 3 270M, {args.rows} "
        "training pairs, "
        f"{args.eval_rows} held-out pairs, {report['train_seconds'] / 60:.1f} min of training "
        f"({result['wall_seconds'] / 60:.1f} min in all, CPU):",
        "",
        "| on the held-out pairs | before training | after |",
        "|---|---|---|",
        *(f"| {label} | {fmt.format(before[key])} | {fmt.format(after[key])} |" for label, key, fmt in rows),
    ]
    text = "\n".join(lines)
    print(text)
    if args.docs:
        write_between((f"<!-- {args.loss}:start -->", f"<!-- {args.loss}:end -->"), text)


if __name__ == "__main__":
    main()
