"""Streaming readers for the dataset formats: one row at a time, with the line number a user sees.

Only the standard library at module level (pyarrow is imported for Parquet only), so a 60k-row upload is
read in near-constant memory by the web process. Bad rows are reported as DataError values instead of
stopping the stream, so one pass can list every problem; read_records() turns them into exceptions.
"""

from __future__ import annotations

import codecs
import csv
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import read_limits
from .read_limits import DataError, json_kind

FORMATS = ("csv", "tsv", "jsonl", "json", "parquet")
EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_ALIASES = {"tab": "tsv", "ndjson": "jsonl", "pq": "parquet"}
_SNIFF_BYTES = 8192
# A dataset names at most this many columns, each at most this long (a job stores column names in 200 characters).
MAX_COLUMNS = 1000
MAX_COLUMN_NAME = 200


def detect_format(path: str | Path, fmt: str | None = None) -> str:
    if fmt:
        name = _ALIASES.get(fmt.strip().lower().lstrip("."), fmt.strip().lower().lstrip("."))
        if name not in FORMATS:
            raise DataError(f"unknown format {fmt!r}; supported formats: {', '.join(FORMATS)}")
        return name
    suffix = Path(path).suffix.lower()
    if suffix not in EXTENSIONS:
        shown = suffix or "no extension"
        raise DataError(
            f"cannot tell the format of a file with {shown!r}; supported extensions: {', '.join(EXTENSIONS)}"
        )
    return EXTENSIONS[suffix]


def _sniff_text(head: bytes) -> str | None:
    """Why the first bytes cannot be a UTF-8 text file, or None when they may be."""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "the file is UTF-16 encoded; save it as UTF-8 (for example 'CSV UTF-8' in Excel)"
    if head.startswith(b"PK\x03\x04"):
        return "this looks like an Excel workbook or a zip archive, not a text file; export it as CSV (UTF-8)"
    if head.startswith(b"PAR1"):
        return "this looks like a Parquet file; give it the .parquet extension"
    if b"\x00" in head:
        return "this is not a text file (it contains binary data)"
    return None


def _utf8_problem(raw: bytes, exc: UnicodeDecodeError) -> str:
    return (
        f"the text is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at position {exc.start + 1}); "
        "save the file with UTF-8 encoding"
    )


class RowReader:
    """Iterate a data file as (row, record, error) triples: exactly one of record and error is not None.

    columns lists the column names in order: known from the header for CSV/TSV and Parquet, and growing in
    order of first appearance for JSON and JSONL. rows and errors count what was yielded.
    """

    def __init__(self, path: str | Path, fmt: str | None = None):
        self.path = Path(path)
        self.format = detect_format(self.path, fmt)
        self.columns: list[str] = []
        self.rows = 0
        self.errors = 0
        self._known: set[str] = set()
        self._handle = None  # the open file of a text format, for bytes_read

    @property
    def bytes_read(self) -> int | None:
        """How far into the file the reader is (for progress), or None where that is not known (Parquet)."""
        handle = self._handle
        try:
            return handle.tell() if handle is not None and not handle.closed else None
        except (OSError, ValueError):
            return None

    def __iter__(self) -> Iterator[tuple[int | None, dict | None, DataError | None]]:
        if not self.path.is_file():
            yield None, None, DataError(f"file {self.path.name!r} not found")
            return
        try:
            size = self.path.stat().st_size
        except OSError as exc:
            yield None, None, DataError(f"cannot read the file: {exc.strerror or exc}")
            return
        if size == 0:
            yield None, None, DataError("the file is empty")
            return
        if self.format != "parquet":
            try:
                with self.path.open("rb") as fh:
                    problem = _sniff_text(fh.read(_SNIFF_BYTES))
            except OSError as exc:
                problem = f"cannot read the file: {exc.strerror or exc}"
            if problem:
                yield None, None, DataError(problem)
                return
        reader = {
            "csv": self._delimited,
            "tsv": self._delimited,
            "jsonl": self._jsonl,
            "json": self._json,
            "parquet": self._parquet,
        }[self.format]
        try:
            nested = self.format not in ("csv", "tsv")  # only JSON and Parquet values can nest
            for row, record, error in reader():
                if self.rows + self.errors >= read_limits.MAX_ROWS:
                    self.errors += 1
                    yield (
                        None,
                        None,
                        DataError(f"the file has more than {read_limits.MAX_ROWS:,} rows; split it into smaller files"),
                    )
                    return
                if record is not None and nested and _too_deep(record):
                    record, error = None, DataError(f"holds values nested more than {MAX_DEPTH} deep", row)
                elif record is not None and (problem := unstorable_text(record)):
                    record, error = None, DataError(problem, row)
                if error is not None:
                    self.errors += 1
                if record is not None:
                    self.rows += 1
                yield row, record, error
        except OSError as exc:  # e.g. permissions, or the file vanished while being read
            self.errors += 1
            yield None, None, DataError(f"cannot read the file: {exc.strerror or exc}")
            return
        if self.rows == 0 and self.errors == 0:
            yield None, None, DataError(self._no_rows_message())

    def _no_rows_message(self) -> str:
        if self.format in ("csv", "tsv"):
            if self.columns:
                return "the file has a header line but no data rows"
            return "the file is empty"
        return "the file has no data rows"

    def _add_columns(self, record: dict) -> str | None:
        """Record a JSON row's keys as columns; what is wrong with them, if anything."""
        for key in record:
            if key not in self._known:
                if problem := _name_problem(key) or _count_problem(len(self.columns) + 1):
                    return problem
                self._known.add(key)
                self.columns.append(key)
        return None

    # -- CSV / TSV -------------------------------------------------------------------------------------
    def _delimited(self):
        bad_lines: dict[int, str] = {}

        def lines(fh):
            for number, raw in capped_lines(fh):
                if raw is None:
                    bad_lines[number] = _long_line()
                    yield "\n"
                    continue
                if number == 1 and raw.startswith(codecs.BOM_UTF8):  # Excel writes a BOM
                    raw = raw[len(codecs.BOM_UTF8) :]
                try:
                    yield raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    # Keep the csv parser going; the record spanning this line is reported instead of yielded.
                    bad_lines[number] = _utf8_problem(raw, exc)
                    yield raw.decode("utf-8", errors="replace")

        if self.format == "tsv":
            # Standard TSV has no quoting: a '"' is an ordinary character (see shared/data/README.md).
            options = dict(delimiter="\t", quoting=csv.QUOTE_NONE)
        else:
            options = dict(delimiter=",", quotechar='"', doublequote=True)
        with self.path.open("rb") as fh:
            self._handle = fh
            reader = csv.reader(lines(fh), strict=False, **options)
            header: list[str] | None = None
            last_line = 0
            while True:
                start = last_line + 1
                try:
                    fields = next(reader)
                except StopIteration:
                    break
                except csv.Error as exc:
                    last_line = reader.line_num
                    yield start, None, DataError(f"cannot parse this line: {exc}", start)
                    continue
                end = last_line = reader.line_num
                bad = next((bad_lines[n] for n in range(start, end + 1) if n in bad_lines), None)
                if not bad and (not fields or (len(fields) == 1 and not fields[0].strip())):
                    continue  # blank line
                if header is None:
                    if bad:
                        yield None, None, DataError(f"the header line: {bad}")
                        return
                    header = [name.strip() or f"column_{i}" for i, name in enumerate(fields, 1)]
                    if problem := header_problem(header):
                        yield None, None, DataError(f"the header line {problem}")
                        return
                    self.columns = header
                    continue
                if bad:
                    yield start, None, DataError(bad, start)
                    continue
                if len(fields) != len(header):
                    message = f"expected {len(header)} fields, found {len(fields)}"
                    if end > start:
                        message += f' (this row runs over lines {start}-{end}: is a quote " left open?)'
                    elif self.format == "csv" and len(fields) > len(header):
                        message += " (put text containing commas in double quotes)"
                    yield start, None, DataError(message, start)
                    continue
                yield start, dict(zip(header, fields)), None

    # -- JSON Lines ------------------------------------------------------------------------------------
    def _jsonl(self):
        with self.path.open("rb") as fh:
            self._handle = fh
            for number, raw in capped_lines(fh):
                if raw is None:
                    yield number, None, DataError(_long_line(), number)
                    continue
                if number == 1 and raw.startswith(codecs.BOM_UTF8):
                    raw = raw[len(codecs.BOM_UTF8) :]
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    yield number, None, DataError(_utf8_problem(raw, exc), number)
                    continue
                if not text.strip():
                    continue
                try:
                    obj = json.loads(text)
                except json.JSONDecodeError as exc:
                    yield number, None, DataError(f"invalid JSON: {exc.msg} (column {exc.colno})", number)
                    continue
                except RecursionError:
                    yield number, None, DataError("invalid JSON: nested too deeply", number)
                    continue
                if not isinstance(obj, dict):
                    found = json_kind(obj)
                    yield number, None, DataError(f"expected a JSON object {{...}} on each line, found {found}", number)
                    continue
                if problem := self._add_columns(obj):
                    yield number, None, DataError(f"this row {problem}", number)
                    return
                yield number, obj, None

    # -- JSON (a top-level list of objects) and Parquet: streamed by their own modules ---------------------
    def _json(self):
        from .json_rows import json_rows

        yield from json_rows(self.path, self._add_columns)

    def _parquet(self):
        from .parquet_rows import parquet_rows

        def set_columns(names: list[str]) -> str | None:
            if problem := header_problem(names):
                return problem
            self.columns = names
            return None

        yield from parquet_rows(self.path, set_columns)


# Deeper nesting than any dataset has (chat messages nest 3 deep) is refused before anything recurses into it.
MAX_DEPTH = 32


def _too_deep(value: Any) -> bool:
    """Whether lists and objects nest more than MAX_DEPTH deep (iterative: a 50,000-deep value cannot recurse)."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth >= MAX_DEPTH:
                return True
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False


def capped_lines(fh) -> Iterator[tuple[int, bytes | None]]:
    """(line number, bytes) per line of a binary file; None instead of the bytes of a line longer than
    read_limits.MAX_ROW_BYTES, which is skipped a piece at a time (a file with no line breaks is never held whole)."""
    number = 0
    while raw := fh.readline(read_limits.MAX_ROW_BYTES + 1):
        number += 1
        if len(raw) > read_limits.MAX_ROW_BYTES and not raw.endswith(b"\n"):
            while (rest := fh.readline(1024 * 1024)) and not rest.endswith(b"\n"):
                pass
            yield number, None
            continue
        yield number, raw


def _long_line() -> str:
    limit = read_limits.MAX_ROW_BYTES // (1024 * 1024)
    return f"this line is longer than {limit} MB; a row holds at most {limit} MB"


# Text Postgres cannot store (NUL) or that is not Unicode text at all (a lone surrogate, from a JSON escape such as
# "\ud800"): found anywhere in a file, not only in the first bytes the binary sniff reads.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def unstorable_text(value: Any, _where: str = "") -> str | None:
    """Where a value (a row, a list of texts) holds text the database cannot store, as a message, or None."""
    if isinstance(value, str):
        if match := _UNSTORABLE.search(value):
            what = (
                "a NUL (\\u0000) character" if match.group() == "\x00" else "a lone surrogate (an invalid \\u escape)"
            )
            return f"{_where or 'the text'} holds {what}; remove it and upload again"
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            where = _where or f"column {str(key)[:40]!r}"
            if problem := unstorable_text(str(key), f"the name of {where}") or unstorable_text(item, where):
                return problem
    elif isinstance(value, list):
        for item in value:
            if problem := unstorable_text(item, _where):
                return problem
    return None


def header_problem(names: list[str]) -> str | None:
    """What is wrong with a file's column names (a header line, a Parquet schema), as "... names ...", or None.
    Linear in the number of names: a header of 100,000 columns is refused at once, not after minutes."""
    if problem := _count_problem(len(names)):
        return problem
    seen, repeated = set(), []
    for name in names:
        if problem := _name_problem(name):
            return problem
        if name in seen:
            repeated.append(name)
        seen.add(name)
    if repeated:
        return f"names a column more than once: {', '.join(sorted(set(repeated))[:10])}"
    return None


def _count_problem(count: int) -> str | None:
    if count > MAX_COLUMNS:
        return f"names more than {MAX_COLUMNS:,} columns; keep the columns training needs (at most {MAX_COLUMNS:,})"
    return None


def _name_problem(name: str) -> str | None:
    if len(name) > MAX_COLUMN_NAME:
        return (
            f"names a column of {len(name):,} characters ({name[:40]!r}...); column names are at most {MAX_COLUMN_NAME}"
        )
    return None


def read_records(path: str | Path, *, fmt: str | None = None) -> Iterator[tuple[int, dict]]:
    """Yield (row, record) for each data row; raise DataError (with .row) at the first bad row."""
    for row, record, error in RowReader(path, fmt):
        if error is not None:
            raise error
        yield row, record


def cell_text(value: Any) -> str | None:
    """A cell as text, or None when it is missing. Lists and objects are not text: ValueError."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if not math.isfinite(value):
            return None  # NaN is how pandas writes a missing value
        return str(int(value)) if value.is_integer() else str(value)
    if isinstance(value, int):
        return str(value)
    raise ValueError(f"holds {json_kind(value)}, expected a single value")


def is_empty(value: Any) -> bool:
    try:
        text = cell_text(value)
    except ValueError:
        return False
    return text is None or not text.strip()
