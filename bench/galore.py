"""GaLore against AdamW for full fine-tuning of the bundled MiniLM on SST-2: the same run (form defaults for
`full`, a seeded cut of the training file) with each optimiser, scored on all 872 dev rows, with the optimiser's
state (exact bytes of its tensors, peftcore.report.optimizer_state_bytes) and the training child's peak resident
memory.

    .venv/bin/python bench/galore.py [--rows 500] [--seed 42] [--ranks 8,32] [--natural] [--docs]

--natural also runs Natural GaLore at each rank.

--docs writes the table into docs/benchmarks.md between its "galore" markers.
"""

import argparse
import datetime
import tempfile
from pathlib import Path

from bench_docs import write_between
from quality import DATA, studio_run, wilson

MARKERS = ("<!-- galore:start -->", "<!-- galore:end -->")
DEV_ROWS = 872
MIB = 1024 * 1024


def row(label: str, result: dict, reference: dict) -> str:
    if "error" in result:
        return f"| {label} | failed: {result['error'][:120]} | | | | |"
    low, high = wilson(result["accuracy"], DEV_ROWS)
    state = result["efficiency"].get("optimizer_state_bytes") or 0
    base_state = (reference.get("efficiency") or {}).get("optimizer_state_bytes") or state
    return (
        f"| {label} | {result['accuracy']:.1%} [{low:.1%}, {high:.1%}] | {state / MIB:.1f} MiB ({state / base_state:.2f}x) "
        f"| {result['efficiency'].get('peak_memory_bytes', 0) / MIB:,.0f} MiB | {result['seconds'] / 60:.1f} min "
        f"| {result['seconds'] / reference.get('seconds', result['seconds']):.2f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--ranks", default="8,32", help="GaLore ranks to run (comma-separated)")
    parser.add_argument("--natural", action="store_true", help="also Natural GaLore at each rank")
    parser.add_argument("--docs", action="store_true")
    args = parser.parse_args()
    optimisers = [("GaLore", "galore")] + ([("Natural GaLore", "natural_galore")] if args.natural else [])
    runs = [("AdamW", [])] + [
        (f"{label} rank {rank}", [f"optimizer={name}", f"galore_rank={rank}"])
        for rank in args.ranks.split(",")
        for label, name in optimisers
    ]
    files = (DATA / "train.tsv", DATA / "dev.tsv")
    lines = [
        f"Run {datetime.date.today().isoformat()}, `bench/galore.py --rows {args.rows} --seed {args.seed} --ranks "
        f"{args.ranks}{' --natural' if args.natural else ''}`: full fine-tuning at the form's defaults otherwise, {args.rows:,} training rows; dev "
        "accuracy [95% interval], the optimiser's state (x AdamW's), the training process's peak resident memory, "
        "training time (x AdamW's, same machine, one after the other).",
        "",
        "| optimiser | dev accuracy | optimiser state | peak RSS | training time | time vs AdamW |",
        "|---|---|---|---|---|---|",
    ]
    reference: dict = {}
    with tempfile.TemporaryDirectory() as work:
        for number, (label, settings) in enumerate(runs):
            result = studio_run("full", args.rows, args.seed, settings, Path(work) / str(number), files)
            reference = reference or result
            lines.append(row(label, result, reference))
            print(lines[-1], flush=True)
    text = "\n".join(lines)
    print(text)
    if args.docs:
        write_between(MARKERS, text)


if __name__ == "__main__":
    main()
