"""Adapter arithmetic on the bundled model (issue 21): what combining finished LoRA adapters does to what each
learned, measured on real data.

    .venv/bin/python bench/combine_adapters.py [--rows 2000] [--seed 42] [--epochs N] [--json out.json] [--docs]

Three LoRA adapters are trained with the studio's defaults (`python -m peftcore train`, nothing set but the row
limit and the seed) on all-MiniLM-L6-v2:
- `sst2`: SST-2 sentiment (a seeded cut of ../shared/data/sst2/train.tsv; evaluated after each epoch on the first
  300 dev rows), scored on all 872 dev rows;
- `sst2'`: the same task on another cut (another seed), for the negation experiment;
- `money`: a sentiment-free task of the same two labels made from GSM8K questions: does the problem deal in money
  (1 when the question holds a "$", which is then removed from the text so the words must tell), trained on a cut
  of train.jsonl (evaluated after each epoch on the first 300 test questions) and scored on all 1,319 questions
  of test.jsonl.

Then `python -m peftcore combine` builds each combination and every adapter is scored on both evaluation sets:
the sum and svd of sst2 and money (does one adapter keep its skill when another is added?), and the paper's
negation, sst2 - sst2' (subtracting what a second adapter learned of the same skill should take that skill
away, leaving the classifier head on the unchanged encoder). --docs writes the table into docs/benchmarks.md
between its "combine" markers.
"""

import argparse
import csv
import datetime
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_data import SHARED, train_classifier
from bench_docs import write_between

REPO = Path(__file__).resolve().parent.parent
MARKERS = ("<!-- combine:start -->", "<!-- combine:end -->")


def money_task(folder: Path) -> tuple[Path, Path]:
    """(train.csv, test.csv) from GSM8K: question (its "$" removed) -> 1 if it dealt in dollars, else 0."""

    def convert(source: Path, target: Path) -> Path:
        with open(source, encoding="utf-8") as fh, open(target, "w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["sentence", "label"])
            for line in fh:
                question = json.loads(line)["question"]
                writer.writerow([question.replace("$", ""), "1" if "$" in question else "0"])
        return target

    gsm = SHARED / "gsm8k"
    return convert(gsm / "train.jsonl", folder / "money-train.csv"), convert(
        gsm / "test.jsonl", folder / "money-test.csv"
    )


def first_rows(source: Path, rows: int) -> Path:
    """The first rows of an evaluation file: what training evaluates on after each epoch (the final scores are
    on every row); the whole file after every epoch would take longer than the training itself."""
    target = source.with_name(f"{source.stem}-first{rows}.csv")
    with open(source, encoding="utf-8", newline="") as fh, open(target, "w", encoding="utf-8", newline="") as out:
        reader, writer = csv.reader(fh), csv.writer(out)
        for i, row in enumerate(reader):
            if i > rows:
                break
            writer.writerow(row)
    return target


def sst2_files(folder: Path) -> tuple[Path, Path]:
    """SST-2 as CSV (the TSV has no quoting; csv writes it safely)."""

    def convert(source: Path, target: Path) -> Path:
        with open(source, encoding="utf-8") as fh, open(target, "w", encoding="utf-8", newline="") as out:
            reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
            csv.writer(out).writerows(reader)
        return target

    sst2 = SHARED / "sst2"
    return convert(sst2 / "train.tsv", folder / "sst2-train.csv"), convert(sst2 / "dev.tsv", folder / "sst2-dev.csv")


def train(name: str, files: tuple[Path, Path], rows: int, seed: int, workdir: Path, epochs: int | None) -> Path:
    more = ["--param", f"max_rows={rows}", "--param", f"seed={seed}", *(["--param", f"epochs={epochs}"] * bool(epochs))]
    return Path(train_classifier(files, "lora", workdir / name, *more)["adapter_dir"])


def combine(name: str, adapters: list[Path], weights: list[float], combination: str, workdir: Path) -> Path:
    from peftcore.models import bundled_model_path

    out = workdir / name
    command = [sys.executable, "-m", "peftcore", "combine", "--model", str(bundled_model_path())]
    for adapter in adapters:
        command += ["--adapter", str(adapter)]
    command += ["--weights", ",".join(map(str, weights)), "--combination", combination, "--out", str(out)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"combining {name} failed:\n{result.stderr[-3000:]}")
    return out


def accuracy(adapter: Path, rows: Path | list[dict], group: str | None = None) -> float:
    """The adapter's accuracy on a CSV file's rows (or the rows themselves); group: a group job's adapter, answering
    as that group's (its own adapter, or its task)."""
    from peftcore.groups import load_group_predictor
    from peftcore.models import bundled_model_path
    from peftcore.predict import load_predictor, predict

    if isinstance(rows, Path):
        with open(rows, encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
    model = bundled_model_path()
    predictor = load_group_predictor(model, adapter, group) if group else load_predictor(model, adapter)
    right = 0
    for start in range(0, len(rows), 32):  # predict() takes at most 32 texts at a time
        batch = rows[start : start + 32]
        answers = predict(predictor, [r["sentence"] for r in batch], max_length=128)
        right += sum(a["label"] == r["label"] for a, r in zip(answers, batch))
    return right / len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--epochs", type=int, help="instead of the studio's step budget (quicker; the table says so)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--docs", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        sst2, money = sst2_files(workdir), money_task(workdir)
        sst2_training = (sst2[0], first_rows(sst2[1], 300))
        trained = {
            "sst2": train("sst2", sst2_training, args.rows, args.seed, workdir, args.epochs),
            "sst2'": train("sst2-other", sst2_training, args.rows, args.seed + 1, workdir, args.epochs),
            "money": train("money", (money[0], first_rows(money[1], 300)), args.rows, args.seed, workdir, args.epochs),
        }
        recipes = [
            ("sst2 + money (sum)", ["sst2", "money"], [1.0, 1.0], "sum"),
            ("sst2 + money (svd)", ["sst2", "money"], [1.0, 1.0], "svd"),
            ("0.5 sst2 + 0.5 money (linear)", ["sst2", "money"], [0.5, 0.5], "linear"),
            ("sst2 - sst2' (negation)", ["sst2", "sst2'"], [1.0, -1.0], "sum"),
            ("sst2 - 0.5 sst2'", ["sst2", "sst2'"], [1.0, -0.5], "sum"),
        ]
        adapters = dict(trained)
        for i, (name, parents, weights, how) in enumerate(recipes):
            adapters[name] = combine(f"combined-{i}", [trained[p] for p in parents], weights, how, workdir)
        results = []
        for name, folder in adapters.items():
            row = {"adapter": name, "sst2_dev": accuracy(folder, sst2[1]), "money_test": accuracy(folder, money[1])}
            print(json.dumps(row), file=sys.stderr)
            results.append(row)
    if args.json:
        args.json.write_text(json.dumps({"rows": args.rows, "seed": args.seed, "results": results}, indent=1))
    table = render(results, args.rows, args.seed, args.epochs)
    print(table)
    if args.docs:
        write_between(MARKERS, table)


def render(results: list[dict], rows: int, seed: int, epochs: int | None) -> str:
    settings = f"the studio's defaults but {epochs} epochs" if epochs else "the studio's defaults"
    lines = [
        f"Measured {datetime.date.today().isoformat()}: LoRA adapters with {settings} on {rows:,} rows "
        f"each (seed {seed}), all-MiniLM-L6-v2; accuracy on all 872 SST-2 dev rows and all 1,319 GSM8K test "
        "questions (money or not). A combination's head is the positive-weighted average of its parents' heads.",
        "",
        "| adapter | SST-2 dev | money (GSM8K test) |",
        "|---|---|---|",
    ]
    lines += [f"| {r['adapter']} | {100 * r['sst2_dev']:.1f}% | {100 * r['money_test']:.1f}% |" for r in results]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
