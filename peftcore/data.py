"""Dataset inspection and loading: formats, columns, and row-numbered validation a user can act on.

Standard library only at module level (no torch, no pandas): the web process inspects every upload with
inspect_file(), and training reads the same rows through read_examples(), so both agree on what is valid.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from .formats import FORMATS, DataError, RowReader, cell_text, detect_format, is_empty, read_records
from .splits import sort_labels

__all__ = [
    "FORMATS",
    "DataError",
    "Example",
    "detect_format",
    "inspect_file",
    "read_examples",
    "read_records",
]

MAX_LABELS = 1000
PREVIEW_CHARS = 1000
IMBALANCE_RATIO = 10  # largest label over smallest: beyond this, accuracy flatters a majority-class model
MIN_ROWS_PER_LABEL = 2  # one row cannot be both trained on and held out
EXAMPLE_ROWS = 5  # row numbers quoted per warning
DUPLICATE_CHECK_ROWS = (
    1_000_000  # rows compared for repeats: about 100 MB at most (a large file's check runs on a worker)
)
PROGRESS_ROWS = 20_000  # rows between progress calls
_NO_LABEL = 1023  # label code of a row without a label (codes < 1023 index the first labels seen)


class Example(NamedTuple):
    row: int
    text: str
    label: str


def _column_value(record: dict, column: str, role: str) -> tuple[str | None, str | None]:
    """(text, problem) for one cell of the text or label column."""
    try:
        text = cell_text(record.get(column))
    except ValueError as exc:
        return None, f"the {role} column {column!r} {exc}"
    if text is None or not text.strip():
        return None, f"the {role} column {column!r} is empty"
    return (text.strip() if role == "label" else text), None


def _not_found(column: str, columns: list[str]) -> DataError:
    return DataError(f"column {column!r} not found; columns are: {', '.join(columns) or '(none)'}")


def read_examples(path: str | Path, *, fmt: str | None = None, text_column: str, label_column: str) -> list[Example]:
    """All (row, text, label) examples of a file; DataError at the first problem, as inspect_file reports it."""
    reader = RowReader(path, fmt)
    examples: list[Example] = []
    first_problem: dict[str, DataError] = {}
    for row, record, error in reader:
        if error is not None:
            raise error
        text, text_problem = _column_value(record, text_column, "text")
        label, label_problem = _column_value(record, label_column, "label")
        for column, problem in ((text_column, text_problem), (label_column, label_problem)):
            if problem and column not in first_problem:
                first_problem[column] = DataError(problem, row)
        if not (text_problem or label_problem):
            examples.append(Example(row, text, label))
    # A column absent from the whole file is one clear error, not one per row.
    for column in (text_column, label_column):
        if column not in reader.columns:
            raise _not_found(column, reader.columns)
    if first_problem:
        raise min(first_problem.values(), key=lambda e: e.row)
    return examples


def _preview_value(value: Any) -> str | int | float | bool:
    if value is None:
        return ""
    if isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else ""  # NaN/inf are not JSON
    if not isinstance(value, str):
        import json

        value = json.dumps(value, ensure_ascii=False, default=str)
    return value if len(value) <= PREVIEW_CHARS else value[:PREVIEW_CHARS] + "…"


class _Inspection:
    def __init__(self, path, fmt, text_column, label_column, preview_rows, max_errors):
        self.path, self.fmt = path, fmt
        self.text_column, self.label_column = text_column, label_column
        self.preview_rows, self.max_errors = max(0, preview_rows), max(1, max_errors)
        self.format: str | None = None
        self.columns: list[str] = []
        self.preview: list[dict] = []
        self.errors: list[dict] = []
        self.error_count = 0
        self.parsed = 0
        self.empty: dict[str, int] = {}
        self.labels: Counter = Counter()
        self.labels_truncated = False
        # Problems in the text/label columns wait until we know the column exists at all (JSONL columns are
        # only known at the end): {column: (count, first errors)}.
        self.pending: dict[str, list] = {}
        self.bad_rows: Counter = Counter()  # (text problem, label problem) -> rows
        # Duplicates: a 64-bit digest of each text -> first row * 1024 + its label's code, two ints a row.
        self.seen: dict[int, int] = {}
        self.label_codes: dict[str, int] = {}
        self.duplicates_partial = False
        self.duplicates: list[tuple[int, int]] = []  # (row, the earlier row it repeats), first few
        self.duplicate_count = 0
        self.conflicts: list[tuple[int, int, str, str]] = []  # same text, other label: (row, first, label, first's)
        self.conflict_count = 0
        self.progress: Callable[[int, float | None], None] | None = None

    def add_error(self, row: int | None, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < self.max_errors:
            self.errors.append({"row": row, "message": message})

    def run(self) -> None:
        try:
            self.format = detect_format(self.path, self.fmt)
        except DataError as exc:
            self.add_error(None, str(exc))
            return
        reader = RowReader(self.path, self.format)
        size = Path(self.path).stat().st_size if self.progress else 0
        for count, (row, record, error) in enumerate(reader, 1):
            self.columns = reader.columns
            if error is not None:
                self.add_error(error.row, error.message)
            else:
                self.take(row, record)
            if self.progress and count % PROGRESS_ROWS == 0:
                done = reader.bytes_read
                self.progress(count, min(done / size, 1.0) if done is not None and size else None)
        self.columns = reader.columns

    def take(self, row: int, record: dict) -> None:
        for column in self.columns:
            if column not in self.empty:
                self.empty[column] = self.parsed  # earlier JSON rows did not have this key
            if is_empty(record.get(column)):
                self.empty[column] += 1
        self.parsed += 1
        if len(self.preview) < self.preview_rows:
            self.preview.append({k: _preview_value(v) for k, v in record.items()})
        flags, values = [], {}
        for column, role in ((self.text_column, "text"), (self.label_column, "label")):
            if not column:
                flags.append(False)
                continue
            value, problem = _column_value(record, column, role)
            values[role] = value
            flags.append(problem is not None)
            if problem:
                count_and_errors = self.pending.setdefault(column, [0, []])
                count_and_errors[0] += 1
                if len(count_and_errors[1]) < self.max_errors:
                    count_and_errors[1].append({"row": row, "message": problem})
            elif role == "label":
                if value in self.labels or len(self.labels) < MAX_LABELS:
                    self.labels[value] += 1
                else:
                    self.labels_truncated = True
        self.bad_rows[tuple(flags)] += 1
        if not any(flags):  # by the text column when named, else by the whole row
            import json

            key = values["text"] if self.text_column else json.dumps(record, sort_keys=True, default=str)
            self.check_duplicate(row, key, values.get("label"))

    def check_duplicate(self, row: int, text: str, label: str | None) -> None:
        if len(self.seen) >= DUPLICATE_CHECK_ROWS:
            self.duplicates_partial = True
            return
        key = int.from_bytes(hashlib.blake2b(" ".join(text.split()).encode(), digest_size=8).digest(), "little")
        code = _NO_LABEL if label is None else self.label_codes.setdefault(label, min(len(self.label_codes), _NO_LABEL))
        first = self.seen.setdefault(key, row * 1024 + code)
        first_row, first_code = divmod(first, 1024)
        if first_row == row:
            return
        self.duplicate_count += 1
        if len(self.duplicates) < EXAMPLE_ROWS:
            self.duplicates.append((row, first_row))
        if label is not None and code != first_code and first_code != _NO_LABEL and code != _NO_LABEL:
            self.conflict_count += 1
            if len(self.conflicts) < EXAMPLE_ROWS:
                first_label = next(name for name, c in self.label_codes.items() if c == first_code)
                self.conflicts.append((row, first_row, label, first_label))

    def warnings(self, labels: dict[str, int] | None) -> list[dict]:
        """What training can live with but a user should know before spending GPU time on it."""
        out = []
        if self.duplicate_count:
            pairs = ", ".join(f"row {r} repeats row {f}" for r, f in self.duplicates)
            out.append(
                {
                    "code": "duplicates",
                    "rows": [r for r, _ in self.duplicates],
                    "message": f"{self.duplicate_count} row(s) repeat {'the text of ' if self.text_column else ''}"
                    f"an earlier row ({pairs}"
                    f"{', ...' if self.duplicate_count > len(self.duplicates) else ''}); "
                    "duplicates can land in both the training and the held-out split and "
                    "inflate the scores"
                    + (f" (the first {DUPLICATE_CHECK_ROWS:,} rows were compared)" if self.duplicates_partial else ""),
                }
            )
        if self.conflict_count:
            pairs = ", ".join(f"row {r} says {label!r}, row {f} {first!r}" for r, f, label, first in self.conflicts)
            out.append(
                {
                    "code": "conflicting_labels",
                    "rows": [r for r, *_ in self.conflicts],
                    "message": f"{self.conflict_count} repeated text(s) carry a different label than the "
                    f"first time ({pairs}); check which label is right",
                }
            )
        if labels and len(labels) >= 2:
            few = [label for label, n in labels.items() if n < MIN_ROWS_PER_LABEL]
            if few:
                out.append(
                    {
                        "code": "too_few_rows",
                        "labels": few,
                        "message": f"label(s) {', '.join(repr(x) for x in few[:EXAMPLE_ROWS])} have fewer than "
                        f"{MIN_ROWS_PER_LABEL} rows, too few to appear in both the training and the "
                        "held-out split; add rows or merge the label",
                    }
                )
            largest, smallest = max(labels, key=labels.get), min(labels, key=labels.get)
            if labels[largest] >= IMBALANCE_RATIO * labels[smallest]:
                out.append(
                    {
                        "code": "imbalance",
                        "labels": [largest, smallest],
                        "message": f"labels are strongly imbalanced: {largest!r} has {labels[largest]:,} rows, "
                        f"{smallest!r} {labels[smallest]:,} ({labels[largest] / labels[smallest]:.0f}:1); "
                        "accuracy will flatter a model that ignores the small labels, so judge by "
                        "macro-F1, or add rows of the small labels",
                    }
                )
        return out

    def result(self) -> dict:
        found = {c: c in self.columns for c in (self.text_column, self.label_column) if c}
        if self.columns:
            for column, present in found.items():
                if not present:
                    self.add_error(None, str(_not_found(column, self.columns)))
        for column, (count, errors) in self.pending.items():
            if found.get(column):
                self.error_count += count
                self.errors.extend(errors)
        # Keep the first errors in file order: file-level ones first, then by row.
        self.errors.sort(key=lambda e: (e["row"] is not None, e["row"] or 0))
        del self.errors[self.max_errors :]
        text_found = bool(self.text_column and found.get(self.text_column))
        label_found = bool(self.label_column and found.get(self.label_column))
        invalid = sum(
            n
            for (text_bad, label_bad), n in self.bad_rows.items()
            if (text_bad and text_found) or (label_bad and label_found)
        )
        rows = self.parsed - invalid
        report = {
            "format": self.format,
            "rows": rows,
            "columns": list(self.columns),
            "preview": [{c: row.get(c, "") for c in self.columns} for row in self.preview],
            "errors": self.errors,
            "error_count": self.error_count,
            "empty_values": {c: self.empty.get(c, 0) for c in self.columns},
            "ok": self.error_count == 0 and rows > 0,
        }
        if label_found:
            order = sort_labels(self.labels)
            report["labels"] = {label: self.labels[label] for label in order}
            report["labels_truncated"] = self.labels_truncated
        usable = text_found or not self.text_column  # a missing text column is already an error
        report["warnings"] = self.warnings(report.get("labels")) if usable and rows else []
        return report


def inspect_file(
    path: str | Path,
    *,
    fmt: str | None = None,
    text_column: str | None = None,
    label_column: str | None = None,
    preview_rows: int = 10,
    max_errors: int = 50,
    progress: Callable[[int, float | None], None] | None = None,
) -> dict:
    """Describe an uploaded file: format, valid rows, columns, preview, row-numbered errors, label counts.

    progress, if given, is called every PROGRESS_ROWS rows with (rows read, share of the file read or None).
    Never raises on file content: anything unexpected becomes a file-level error in the report.
    """
    inspection = _Inspection(path, fmt, text_column, label_column, preview_rows, max_errors)
    inspection.progress = progress
    try:
        inspection.run()
    except Exception as exc:  # user bytes must never crash an upload view
        inspection.add_error(None, f"could not read the file: {type(exc).__name__}: {exc}")
    try:
        return inspection.result()
    except Exception as exc:  # defensive: a report is always returned
        return {
            "format": inspection.format,
            "rows": 0,
            "columns": [],
            "preview": [],
            "errors": [{"row": None, "message": f"could not read the file: {type(exc).__name__}: {exc}"}],
            "error_count": 1,
            "empty_values": {},
            "ok": False,
            "warnings": [],
        }
