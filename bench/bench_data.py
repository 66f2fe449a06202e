"""Classification data the benchmarks make from ../shared/data (written to a temporary folder; the shared files
are never edited). Imported by the scripts beside it (bench/ is their sys.path[0])."""

import json
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"


def gsm8k_steps(folder: Path) -> tuple[Path, Path]:
    """(train.csv, test.csv): question -> the number of steps of its solution, bucketed 2 / 3 / 4+."""
    import csv

    def convert(source: Path, target: Path) -> Path:
        with open(source, encoding="utf-8") as fh, open(target, "w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["sentence", "label"])
            for line in fh:
                row = json.loads(line)
                steps = sum(1 for part in row["answer"].split("\n") if part.strip() and not part.startswith("####"))
                writer.writerow([row["question"], str(steps) if steps < 4 else "4+"])
        return target

    gsm = SHARED / "gsm8k"
    return convert(gsm / "train.jsonl", folder / "train.csv"), convert(gsm / "test.jsonl", folder / "test.csv")


def train_classifier(files: tuple[Path, Path], method: str, out: Path, *more: str) -> dict:
    """`python -m peftcore train` on (train, eval) CSV files of sentence,label rows with the studio's defaults but
    `more` (flags such as --param seed=42): its done event; a failed run ends the benchmark with its stderr."""
    import subprocess
    import sys

    command = [sys.executable, "-m", "peftcore", "train", "--data", str(files[0]), "--eval-data", str(files[1])]
    command += ["--text-column", "sentence", "--label-column", "label", "--method", method, "--out", str(out), *more]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    done = [e for e in events if e.get("event") == "done"]
    if result.returncode != 0 or not done:
        raise SystemExit(f"training {out.name} failed:\n{result.stderr[-3000:]}")
    print(f"trained {out.name}", file=sys.stderr)
    return done[-1]
