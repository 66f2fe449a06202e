"""The evidence behind the studio's recommended method: peftcore/benchmark_table.json (written by
`bench/methods.py --record`) summarised per training size, and what the studio recommends from it.

    .venv/bin/python bench/recommend_table.py [--docs]

Per benchmarked size: each method's dev accuracy in every run (dataset x seed), its mean, and against LoRA in the
same runs the mean difference and how many runs it won; then the recommendation (peftcore/recommend.py) for
several dataset sizes, with its confidence. --docs writes it into docs/benchmarks.md between its "recommend"
markers. Imports no torch: it reads the JSON table only.
"""

import argparse
import sys
from pathlib import Path

from bench_docs import write_between

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
MARKERS = ("<!-- recommend:start -->", "<!-- recommend:end -->")
ASKED = (300, 500, 1_000, 2_000, 8_000)


def markdown() -> str:
    from peftcore.recommend import load_table, recommend, summarise

    runs = [r for r in load_table()["runs"] if r.get("task") == "text-classification"]
    lines = []
    for size in sorted({r["rows"] for r in runs}):
        at = [r for r in runs if r["rows"] == size]
        names = [f"{r.get('dataset')} seed {r.get('seed')}" for r in at]
        lines += [
            f"{size:,} training rows ({len(at)} run{'s' if len(at) != 1 else ''}; commands in "
            "`peftcore/benchmark_table.json`; trainable counts of the first run's labels):",
            "",
            "| method | trainable | " + " | ".join(names) + " | mean | vs LoRA (mean) | runs won vs LoRA |",
            "|---|---|" + "---|" * len(names) + "---|---|---|",
        ]
        for row in summarise(at):
            cells = []
            for run in at:
                found = next((x for x in run["results"] if x["method"] == row["method"]), {})
                cells.append(f"{found['accuracy']:.1%}" if found.get("accuracy") is not None else "—")
            gain = f"{row['gain']:+.1%}" if "gain" in row else ""
            wins = f"{row['wins']} of {len(at)}" if "wins" in row and row["method"] != "lora" else ""
            lines.append(
                f"| {row['method']} | {row['trainable']:,} | " + " | ".join(cells) + f" | {row['accuracy']:.1%} | "
                f"{gain if row['method'] != 'lora' else ''} | {wins} |"
            )
        lines.append("")
    lines += ["| a dataset of | recommended | confidence | from |", "|---|---|---|---|"]
    for rows in ASKED:
        choice = recommend("text-classification", rows)
        lines.append(
            f"| {rows:,} rows | {choice.method} | {choice.confidence} | {choice.runs} run(s) at "
            f"{choice.benchmark_rows:,} rows |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", action="store_true")
    args = parser.parse_args()
    text = markdown()
    print(text)
    if args.docs:
        write_between(MARKERS, text)


if __name__ == "__main__":
    main()
