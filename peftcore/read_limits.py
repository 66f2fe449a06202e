"""What every dataset reader shares: the error it reports, the limits it keeps while a file streams, and how a JSON
value is named in messages. Its own module so the format readers (formats, json_rows, parquet_rows) import it
without importing each other."""

from typing import Any

# Checked while a file streams, so a small file that expands (a compressed Parquet column, a line with no end) is
# refused before it costs memory or minutes: a row (a line, a JSON object, a Parquet row) holds at most
# MAX_ROW_BYTES, and a file at most MAX_ROWS rows and MAX_DECODED_BYTES once decompressed (Parquet's concern; the
# text formats are as large as the upload).
MAX_ROW_BYTES = 4 * 1024 * 1024
MAX_ROWS = 20_000_000
MAX_DECODED_BYTES = 8 * 1024**3


class DataError(ValueError):
    """A problem with the data. row is the 1-based line (CSV/TSV/JSONL) or object index (JSON, Parquet),
    or None for problems with the whole file."""

    def __init__(self, message: str, row: int | None = None):
        super().__init__(message)
        self.message = message
        self.row = row

    def __str__(self) -> str:
        return f"row {self.row}: {self.message}" if self.row is not None else self.message


def json_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "true/false"
    if value is None:
        return "null"
    return "a number"
