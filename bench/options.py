"""The seed papers' training options on SST-2, each against the same run without it: LoRA at the form's defaults
(a seeded cut of the training file), then the same with each variant's settings, scored on all 872 dev rows.
Every run also measures the share of feed-forward units that fire on the dev rows before and after training
(peftcore/density.py), so DEFT's density loss can be read against the others.

    .venv/bin/python bench/options.py [--rows 500] [--seed 42] [--method lora] [--docs [--markers NAME]]
        [--variant "LABEL=KEY=VALUE,KEY=VALUE" ...]

Default variants: DEFT's density loss at 0.3 and 1 (`density_loss`), BA-LoRA's three regularisers together
(`ba_consistency=1,ba_diversity=0.1,ba_svd=0.1`), Light-PEFT's pruning of half the adapter's ranks after a tenth
of the steps (`prune_ranks=0.5`; the last column says what it cut and the step time before and after; the base
model's heads and channels likewise with `prune_heads`, `prune_channels`). --docs writes
the table into docs/benchmarks.md between its "options" markers (--markers NAME: between "NAME" markers, for another
set of variants).
"""

import argparse
import datetime
import tempfile
from pathlib import Path

from bench_docs import write_between
from quality import DATA, studio_run, wilson

DEV_ROWS = 872
VARIANTS = (
    "DEFT density loss 0.3=density_loss=0.3",
    "DEFT density loss 1=density_loss=1",
    "BA-LoRA regularisers=ba_consistency=1,ba_diversity=0.1,ba_svd=0.1",
    "Light-PEFT half the ranks pruned=prune_ranks=0.5",
)


def parse_variant(text: str) -> tuple[str, list[str]]:
    label, _, settings = text.partition("=")
    return label.strip(), [item.strip() for item in settings.split(",") if item.strip()]


def row(label: str, settings: list[str], result: dict) -> str:
    shown = ", ".join(f"`{s}`" for s in settings) or "(form defaults)"
    if "error" in result:
        return f"| {label} | {shown} | failed: {result['error'][:120]} | | | | |"
    low, high = wilson(result["accuracy"], DEV_ROWS)
    density = result["density"] or {}
    before, after = density.get("before"), density.get("after")
    cut = "; ".join(filter(None, (_ranks_cut(result.get("pruning")), _base_cut(result.get("base_pruning")))))
    return (
        f"| {label} | {shown} | {result['accuracy']:.1%} [{low:.1%}, {high:.1%}] | {before:.1%} | {after:.1%} "
        f"| {result['seconds'] / 60:.1f} min | {cut} |"
    )


def _ranks_cut(pruned: dict | None) -> str:
    if not pruned:
        return ""
    return (
        f"ranks {pruned['ranks_before']} → {pruned['ranks_after']} after step {pruned['at_step']}, trainable "
        f"{pruned['trainable_before']:,} → {pruned['trainable_after']:,}, s/step {pruned['seconds_per_step_before']:.3f}"
        f" → {pruned['seconds_per_step_after']:.3f}"
    )


def _base_cut(cut: dict | None) -> str:
    if not cut:
        return ""
    before, after = cut["before"], cut["after"]
    return (
        f"heads {before['heads']} → {after['heads']}, FFN channels {before['channels']:,} → {after['channels']:,} "
        f"after step {cut['at_step']}, weights {cut['total_before']:,} → {cut['total_after']:,}, s/step "
        f"{cut['seconds_per_step_before']:.3f} → {cut['seconds_per_step_after']:.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--method", default="lora")
    parser.add_argument("--variant", action="append", help='"LABEL=KEY=VALUE,KEY=VALUE" (repeatable)')
    parser.add_argument("--docs", action="store_true")
    parser.add_argument("--markers", default="options", help="--docs writes between <!-- NAME:start/end --> markers")
    args = parser.parse_args()
    variants = [("without", [])] + [parse_variant(v) for v in args.variant or VARIANTS]
    files = (DATA / "train.tsv", DATA / "dev.tsv")
    lines = [
        f"Run {datetime.date.today().isoformat()}, `bench/options.py --rows {args.rows} --seed {args.seed} --method "
        f"{args.method}`: {args.method} at the form's defaults otherwise, {args.rows:,} training rows; dev accuracy "
        "[95% interval], share of feed-forward units firing on the dev rows before and after training.",
        "",
        "| variant | settings | dev accuracy | firing before | firing after | training time | pruned |",
        "|---|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as work:
        for number, (label, settings) in enumerate(variants):
            extra = ["measure_density=true", *settings]
            result = studio_run(args.method, args.rows, args.seed, extra, Path(work) / str(number), files)
            lines.append(row(label, settings, result))
            print(lines[-1], flush=True)
    text = "\n".join(lines)
    print(text)
    if args.docs:
        write_between((f"<!-- {args.markers}:start -->", f"<!-- {args.markers}:end -->"), text)


if __name__ == "__main__":
    main()
