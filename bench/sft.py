"""SFT on the bundled Gemma 3 270M: the studio's job next to a plain transformers + peft script on the same GSM8K
rows, model, settings and seed, in one run. Prints and (--docs) writes to docs/benchmarks.md:

- training tokens/s of the studio job over the plain script's (which, as a user's script does, hands the model
  its labels and so gets full-vocabulary logits and a loss at every position), with the studio's defaults and with
  every saving switched off (answer_logits_only=false, group_by_length=false);
- what the studio's run learned on held-out GSM8K rows: eval loss, ROUGE-L, the final answer stated in GSM8K's
  "#### N" form and right, before and after training (from the job's report);
- each run's peak memory (resident set on a CPU) and wall time.

    .venv/bin/python bench/sft.py [--rows 64] [--eval-rows 8] [--max-length 192] [--batch-size 4] [--docs]
    .venv/bin/python bench/sft.py --quality --rows 400 --eval-rows 40 --max-length 320 --docs   # what it learns
    .venv/bin/python bench/sft.py --prune 0.5 --rows 128 --eval-rows 16 --max-length 256 --docs  # Light-PEFT's cut
    .venv/bin/python bench/sft.py --methods cpt,xlora,cartridge --rows 128 --eval-rows 16 --max-length 256 --docs

--methods: the methods that only write (no SST-2 row in the methods table) against LoRA on the same rows, each
with the form's defaults for its own settings and learning rate (LoRA: the settings above).

The model is converted once (peftcore/gemma_bundle.py) into --model-root (default: the tests' cache). A CPU-sized
run; on a GPU raise --rows (the issue's 400) and it runs the same way.
"""

import argparse
import datetime
import json
import math
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_docs import write_between

REPO = Path(__file__).resolve().parent.parent
GSM8K = REPO.parent / "shared" / "data" / "gsm8k"
MARKERS = ("<!-- sft:start -->", "<!-- sft:end -->")
QUALITY_MARKERS = ("<!-- sft-quality:start -->", "<!-- sft-quality:end -->")
PRUNE_MARKERS = ("<!-- sft-prune:start -->", "<!-- sft-prune:end -->")
METHODS_MARKERS = ("<!-- sft-methods:start -->", "<!-- sft-methods:end -->")
DEFAULT_ROOT = Path.home() / ".cache" / "peft-studio-tests" / "models"
LR, R, ALPHA, DROPOUT, SEED = 2e-4, 8, 16, 0.1, 42
NO_SAVINGS = ("answer_logits_only=false", "group_by_length=false")
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]  # the studio's "both"


def write_rows(path: Path, source: Path, rows: int) -> Path:
    lines = source.read_text(encoding="utf-8").splitlines()[:rows]
    path.write_text("".join(json.dumps(json.loads(line)) + "\n" for line in lines), encoding="utf-8")
    return path


def studio(args, model_root: Path, train: Path, evaluation: Path, out: Path, *extra: str, method: str = "lora") -> dict:
    command = [sys.executable, "-m", "peftcore", "train", "--task", "sft", "--model", "bundled/gemma-3-270m"]
    command += ["--model-root", str(model_root), "--data", str(train), "--eval-data", str(evaluation)]
    command += ["--text-column", "question", "--label-column", "answer", "--method", method, "--out", str(out)]
    settings = [f"epochs={args.epochs}", f"batch_size={args.batch_size}", f"max_length={args.max_length}"]
    settings += [f"seed={SEED}", *extra]
    if method == "lora":  # the other methods take the form's defaults for their settings and learning rate
        settings += [f"learning_rate={LR}", f"r={R}", f"lora_alpha={ALPHA}"]
    for item in settings:
        command += ["--param", item]
    if args.threads:
        command += ["--threads", str(args.threads)]
    began = time.monotonic()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    report = next((e["report"] for e in events if e.get("event") == "done"), None)
    if report is None:
        error = next((e for e in events if e.get("event") == "error"), None)
        if method != "lora" and error is not None:  # a refusal is a row of the methods table, not the end
            return {"refused": error.get("message")}
        raise SystemExit(f"the studio run failed: {done.stderr[-2000:]}")
    efficiency = report["efficiency"]
    return {
        "trainable_params": report["trainable_params"],
        "learning_rate": report.get("params", {}).get("learning_rate"),
        "tokens_per_second": efficiency["tokens_per_second"],
        "train_tokens": efficiency["train_tokens"],
        "peak_memory_bytes": efficiency["peak_memory_bytes"],
        "wall_seconds": round(time.monotonic() - began, 1),
        "before": report["baseline_metrics"],
        "after": report["metrics"],
        "base_pruning": report.get("base_pruning"),
    }


def plain(args, model_root: Path, train: Path) -> dict:
    """The script a user would write, run in its own process (this file, --plain)."""
    command = [sys.executable, __file__, "--plain", str(train), "--model-root", str(model_root)]
    command += ["--batch-size", str(args.batch_size), "--max-length", str(args.max_length)]
    command += ["--epochs", str(args.epochs)] + (["--threads", str(args.threads)] if args.threads else [])
    began = time.monotonic()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise SystemExit(f"the plain script failed: {done.stderr[-2000:]}")
    return {**json.loads(lines[-1]), "wall_seconds": round(time.monotonic() - began, 1)}


def plain_script(args) -> None:
    """transformers + peft only: Gemma's turn format, the loss on the answer (the prompt's labels -100), the model's
    own loss (logits at every position), AdamW with linear decay after 6% warm-up."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, get_linear_schedule_with_warmup

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(SEED)
    folder = Path(args.model_root) / "bundled" / "gemma-3-270m"
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    model = get_peft_model(
        model, LoraConfig(r=R, lora_alpha=ALPHA, lora_dropout=DROPOUT, target_modules=TARGETS, task_type="CAUSAL_LM")
    )
    rows = [json.loads(line) for line in Path(args.plain).read_text().splitlines()]
    examples = []
    for row in rows:
        prompt = f"<start_of_turn>user\n{row['question']}<end_of_turn>\n<start_of_turn>model\n"
        ids = [tokenizer.bos_token_id] + tokenizer(prompt, add_special_tokens=False)["input_ids"]
        answer = tokenizer(row["answer"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        examples.append(((ids + answer)[: args.max_length], ([-100] * len(ids) + answer)[: args.max_length]))
    steps = math.ceil(len(examples) / args.batch_size) * args.epochs
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=LR)
    schedule = get_linear_schedule_with_warmup(optimizer, round(0.06 * steps), steps)
    model.train()
    tokens, seconds = 0, 0.0
    for _ in range(args.epochs):
        order = list(range(len(examples)))
        random.Random(SEED).shuffle(order)
        for first in range(0, len(order), args.batch_size):
            batch = [examples[i] for i in order[first : first + args.batch_size]]
            width = max(len(ids) for ids, _ in batch)
            input_ids = torch.tensor([ids + [tokenizer.pad_token_id] * (width - len(ids)) for ids, _ in batch])
            labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in batch])
            mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in batch])
            began = time.monotonic()
            loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            seconds += time.monotonic() - began
            tokens += int(mask.sum())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(
        json.dumps({"tokens_per_second": round(tokens / seconds, 1), "train_tokens": tokens, "peak_memory_bytes": peak})
    )


QUALITY = (
    ("eval_loss", "eval loss", "{:.3f}"),
    ("rouge_l", "ROUGE-L", "{:.1%}"),
    ("answer_format", 'final answer stated as "#### N"', "{:.1%}"),
    ("answer_match", "final answer right", "{:.1%}"),
)


def table(results: dict, args) -> str:
    plain_speed = results["plain"]["tokens_per_second"]
    rows = [
        "| run | tokens/s | / plain script | peak memory | wall time |",
        "|---|---|---|---|---|",
    ]
    names = {
        "studio": "studio, defaults (output layer on answer positions only, batches of similar length)",
        "studio_no_savings": "studio, every saving off (`answer_logits_only=false group_by_length=false`)",
        "plain": "plain transformers + peft script (the model's own loss: logits at every position)",
    }
    for key, label in names.items():
        run = results[key]
        rows.append(
            f"| {label} | {run['tokens_per_second']:.0f} | **{run['tokens_per_second'] / plain_speed:.2f}** | "
            f"{run['peak_memory_bytes'] / 2**30:.2f} GiB | {run['wall_seconds'] / 60:.1f} min |"
        )
    before, after = results["studio"]["before"], results["studio"]["after"]
    quality = ["", "| held-out GSM8K rows | before training | after |", "|---|---|---|"]
    return "\n".join(rows + quality + quality_rows(before, after))


def quality_rows(before: dict, after: dict) -> list[str]:
    return [
        f"| {label} | {fmt.format(before.get(key, float('nan')))} | {fmt.format(after[key])} |"
        for key, label, fmt in QUALITY
        if key in after
    ]


def quality_table(run: dict, args) -> str:
    before, after = run["before"], run["after"]
    lines = ["| held-out GSM8K rows | base model | after SFT |", "|---|---|---|", *quality_rows(before, after)]
    lines += [
        "",
        f"Training {run['train_tokens']:,} tokens at {run['tokens_per_second']:.0f} tokens/s; the whole job (model "
        f"load, both evaluations with generation, training) {run['wall_seconds'] / 60:.1f} min; peak memory "
        f"{run['peak_memory_bytes'] / 2**30:.2f} GiB.",
    ]
    return "\n".join(lines)


def prune_table(runs: dict, share: float) -> str:
    whole, cut = runs["whole"], runs["cut"]
    pruned = cut["base_pruning"]
    if not pruned:
        raise SystemExit("the cut run ended before its cut (too few steps for prune_after): raise --rows")
    lines = [
        f"| held-out GSM8K rows | base model | after SFT | after SFT with `--prune {share}` |",
        "|---|---|---|---|",
    ]
    for key, label, fmt in QUALITY:
        if key in whole["after"] and key in cut["after"]:
            values = (whole["before"].get(key, float("nan")), whole["after"][key], cut["after"][key])
            lines.append(f"| {label} | " + " | ".join(fmt.format(v) for v in values) + " |")
    speed = cut["tokens_per_second"] / whole["tokens_per_second"]
    before, after = pruned["before"], pruned["after"]
    lines += [
        "",
        "| | whole | cut |",
        "|---|---|---|",
        f"| tokens/s over the run | {whole['tokens_per_second']:.0f} | {cut['tokens_per_second']:.0f} ({speed:.2f}x) |",
        f"| heads, FFN channels | {before['heads']}, {before['channels']:,} | {after['heads']}, "
        f"{after['channels']:,} (cut at step {pruned['at_step']}) |",
        f"| s/step before → after the cut (the cut run) | | {pruned.get('seconds_per_step_before') or 0:.2f} → "
        f"{pruned.get('seconds_per_step_after') or 0:.2f} |",
        f"| peak memory | {whole['peak_memory_bytes'] / 2**30:.2f} GiB | {cut['peak_memory_bytes'] / 2**30:.2f} GiB |",
        f"| whole job (load, both evaluations, training) | {whole['wall_seconds'] / 60:.1f} min | "
        f"{cut['wall_seconds'] / 60:.1f} min |",
    ]
    return "\n".join(lines)


def methods_table(runs: dict) -> str:
    lines = [
        "| method | trainable | lr | " + " | ".join(label for _, label, _ in QUALITY) + " | tokens/s | whole job |",
        "|---|---|---|" + "---|" * len(QUALITY) + "---|---|",
    ]
    base = runs["lora"]["before"]
    lines.append(
        "| base model | | | " + " | ".join(fmt.format(base.get(k, float("nan"))) for k, _, fmt in QUALITY) + " | | |"
    )
    for name, run in runs.items():
        if "refused" in run:
            lines.append(f"| {name} | refused: {run['refused']} |" + " |" * (len(QUALITY) + 3))
            continue
        scores = " | ".join(fmt.format(run["after"].get(k, float("nan"))) for k, _, fmt in QUALITY)
        lines.append(
            f"| {name} | {run['trainable_params']:,} | {run['learning_rate']:g} | {scores} | "
            f"{run['tokens_per_second']:.0f} | {run['wall_seconds'] / 60:.1f} min |"
        )
    return "\n".join(lines)


def write_docs(markers: tuple[str, str], stamp: str, text: str) -> None:
    write_between(markers, f"{stamp}\n\n{text}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--eval-rows", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=192)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--model-root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--docs", action="store_true")
    parser.add_argument("--quality", action="store_true", help="only the studio job: what it learns (own table)")
    parser.add_argument(
        "--prune",
        type=float,
        help="only the studio job, without and with Light-PEFT's cut of this share of the base model's heads and "
        "FFN channels (prune_heads, prune_channels; own table)",
    )
    parser.add_argument("--methods", help="only studio jobs: LoRA, then each of these methods (own table)")
    parser.add_argument("--plain", help=argparse.SUPPRESS)  # internal: run the plain script on this file
    args = parser.parse_args()
    if args.plain:
        return plain_script(args)
    sys.path.insert(0, str(REPO))
    from peftcore import gemma_bundle

    gemma_bundle.prepare(args.model_root)
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-sft-") as tmp:
        tmp = Path(tmp)
        train = write_rows(tmp / "train.jsonl", GSM8K / "train.jsonl", args.rows)
        evaluation = write_rows(tmp / "eval.jsonl", GSM8K / "test.jsonl", args.eval_rows)
        if args.prune is not None:
            cut = (f"prune_heads={args.prune}", f"prune_channels={args.prune}")
            runs = {"whole": studio(args, args.model_root, train, evaluation, tmp / "a")}
            runs["cut"] = studio(args, args.model_root, train, evaluation, tmp / "b", *cut)
            return _publish(args, began, runs, prune_table(runs, args.prune), PRUNE_MARKERS)
        if args.methods:
            runs = {}
            for name in ["lora", *(m for m in args.methods.split(",") if m != "lora")]:
                runs[name] = studio(args, args.model_root, train, evaluation, tmp / name, method=name)
                print(json.dumps({name: runs[name]}), file=sys.stderr, flush=True)
            return _publish(args, began, runs, methods_table(runs), METHODS_MARKERS)
        if args.quality:
            run = studio(args, args.model_root, train, evaluation, tmp / "a")
            return _publish(args, began, run, quality_table(run, args), QUALITY_MARKERS)
        results = {"plain": plain(args, args.model_root, train)}
        print(json.dumps(results["plain"]), file=sys.stderr, flush=True)
        results["studio"] = studio(args, args.model_root, train, evaluation, tmp / "a")
        print(json.dumps(results["studio"]), file=sys.stderr, flush=True)
        results["studio_no_savings"] = studio(args, args.model_root, train, evaluation, tmp / "b", *NO_SAVINGS)
    _publish(args, began, results, table(results, args), MARKERS)


def _publish(args, began: float, data: dict, text: str, markers: tuple[str, str]) -> None:
    """The table to stdout, the results to --json, the table into docs/benchmarks.md with --docs."""
    print(text)
    if args.json:
        args.json.write_text(json.dumps(data, indent=2) + "\n")
    if args.docs:
        write_docs(markers, _stamp(args, began), text)


def _stamp(args, began: float) -> str:
    mode = " --quality" if args.quality else f" --prune {args.prune}" if args.prune is not None else ""
    mode = f" --methods {args.methods}" if args.methods else mode
    return (
        f"Run {datetime.date.today()} ({(time.monotonic() - began) / 60:.0f} min wall): `--rows {args.rows} "
        f"--eval-rows {args.eval_rows} --epochs {args.epochs} --batch-size {args.batch_size} --max-length "
        f"{args.max_length}{mode}`, LoRA r {R} on all linear layers, lr {LR}, seed {SEED}, CPU:"
    )


if __name__ == "__main__":
    main()
