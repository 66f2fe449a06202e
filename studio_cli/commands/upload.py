import sys
import time
from pathlib import Path

from studio_cli.client import UPLOAD_TIMEOUT, Studio
from studio_cli.config import resolve
from studio_cli.errors import CliError
from studio_cli.progress import CountingReader, progress_bar, say

CHECK_POLL_SECONDS = 1.0


def upload(args) -> int:
    path = Path(args.file)
    if not path.is_file():
        raise CliError(f"{path}: no such file")
    form = {
        key: value
        for key, value in (("name", args.name), ("text_column", args.text_column), ("label_column", args.label_column))
        if value
    }
    studio = Studio(*resolve(args))
    with (
        open(path, "rb") as file,
        progress_bar(
            args, total=path.stat().st_size, unit="B", unit_scale=True, unit_divisor=1024, desc=path.name
        ) as bar,
    ):
        response = studio.request(
            "POST",
            "/datasets",
            ok=(201, 202),
            data=form,
            timeout=UPLOAD_TIMEOUT,
            files={"file": (path.name, CountingReader(file, bar), "application/octet-stream")},
        )
    dataset = response.json()
    if response.status_code == 202:  # stored; a worker checks the rows
        dataset = _wait_for_check(args, studio, dataset)
    if dataset["state"] == "invalid":
        stats = dataset.get("stats") or {}
        for error in stats.get("errors") or []:
            where = f"row {error['row']}" if error.get("row") else "file"
            print(f"{where}: {error['message']}", file=sys.stderr)
        raise CliError(
            f"dataset {dataset['id']}: {stats.get('detail', 'the check found errors')}; it cannot be trained on "
            "(delete it on its page in the studio)"
        )
    print(f"dataset {dataset['id']} '{dataset['name']}': {dataset['rows']:,} rows, {dataset['format']}")
    print(f"columns: {', '.join(dataset['columns'])}")
    for warning in dataset.get("warnings") or []:
        print(f"warning: {warning.get('message', warning)}")
    return 0


def _wait_for_check(args, studio: Studio, dataset: dict) -> dict:
    """Follow a worker's check of a large upload until it ends, as a progress bar over the file."""
    say(f"stored dataset {dataset['id']}; a worker is checking its rows")
    deadline = time.monotonic() + args.wait
    with progress_bar(args, total=100, unit="%", desc="checking") as bar:
        while dataset["state"] == "checking":
            if time.monotonic() > deadline:
                raise CliError(
                    f"dataset {dataset['id']} is still being checked after {args.wait:.0f} s (is a maintenance worker "
                    "running?); `datasets` shows its state later"
                )
            time.sleep(CHECK_POLL_SECONDS)
            dataset = studio.get(f"/datasets/{dataset['id']}")
            bar.n = round(100 * (dataset.get("progress") or 0))
            bar.set_postfix_str(f"{dataset['rows']:,} rows", refresh=True)
        bar.n = 100
        bar.refresh()
    return dataset
