"""Classification data the benchmarks make from ../shared/data (written to a temporary folder; the shared files
are never edited). Imported by the scripts beside it (bench/ is their sys.path[0])."""

import json
from pathlib import Path

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


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
