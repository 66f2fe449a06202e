"""A Parquet dataset read in batches under the limits of read_limits.py, so a small file cannot make the web process
decode gigabytes: a 7 KB file holding one 200 MB string, or a million rows that all point at one long dictionary
value, is refused with the limit it breaks.

Before anything is decoded, the file's own metadata is checked (rows, decompressed size per column chunk, and
compression ratios no real text reaches). While reading, text columns stay dictionary-encoded until each row's
decoded size is known from the dictionary's value lengths, and a batch is turned into Python values only once
it is known to fit.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from . import read_limits as limits

_BATCH_ROWS = 1024
_MB = 1024 * 1024
# A column chunk that decompresses more than this many times over, and to more than BOMB_BYTES, is a
# compression bomb: real text compresses 3-10 times, and even a constant column written without a dictionary
# stays far below this ratio at that size.
BOMB_RATIO = 1000
BOMB_BYTES = 64 * _MB
_CONVERT_BYTES = 32 * _MB  # a batch heavier than this becomes Python values a few rows at a time


def _size(n: int) -> str:
    return f"{n / _MB:,.1f} MB" if n < 1024 * _MB else f"{n / (1024 * _MB):,.1f} GB"


def metadata_problem(parquet) -> str | None:
    """What the file's metadata shows to be over a limit, before a byte is decoded; None when it fits."""
    meta = parquet.metadata
    if meta.num_rows > limits.MAX_ROWS:
        return f"the file holds {meta.num_rows:,} rows; a dataset has at most {limits.MAX_ROWS:,} (split it)"
    total = 0
    for group in range(meta.num_row_groups):
        row_group = meta.row_group(group)
        rows = max(row_group.num_rows, 1)
        for index in range(row_group.num_columns):
            chunk = row_group.column(index)
            size, packed = chunk.total_uncompressed_size, max(chunk.total_compressed_size, 1)
            total += size
            name = chunk.path_in_schema
            if size > rows * limits.MAX_ROW_BYTES:
                return (
                    f"column '{name[:40]}' decompresses to {_size(size)} for {rows:,} rows: more than "
                    f"{limits.MAX_ROW_BYTES // _MB} MB a row, the most a row may hold"
                )
            if size > BOMB_BYTES and size / packed > BOMB_RATIO:
                return (
                    f"column '{name[:40]}' decompresses {size // packed:,} times over, to {_size(size)}: "
                    f"more than {BOMB_RATIO:,} times is not data a model trains on"
                )
    if total > limits.MAX_DECODED_BYTES:
        return f"the file decompresses to {_size(total)}; a dataset decompresses to at most {_size(limits.MAX_DECODED_BYTES)}"
    return None


def _text_types():
    import pyarrow as pa

    return (pa.types.is_string, pa.types.is_large_string, pa.types.is_binary, pa.types.is_large_binary)


def _row_bytes(batch):
    """Each row's decoded size in bytes (text columns from their dictionary's value lengths), as an Arrow array."""
    import pyarrow as pa
    import pyarrow.compute as pc

    rows, text_types = batch.num_rows, _text_types()
    sizes = pa.array([0] * rows, pa.int64())
    for column in batch.columns:
        if pa.types.is_dictionary(column.type):
            lengths = pc.binary_length(column.dictionary).cast(pa.int64())
            part = pc.fill_null(pc.take(lengths, column.indices), 0)
        elif any(check(column.type) for check in text_types):
            part = pc.fill_null(pc.binary_length(column).cast(pa.int64()), 0)
        elif column.nbytes <= limits.MAX_ROW_BYTES:  # numbers, or lists and structs too small to hide a big row
            part = pa.array([column.nbytes // max(rows, 1)] * rows, pa.int64())
        else:  # lists and structs heavy enough to: measured row by row (a slice counts its own bytes only)
            part = pa.array([column.slice(i, 1).nbytes for i in range(rows)], pa.int64())
        sizes = pc.add(sizes, part)
    return sizes


def parquet_rows(path: Path, set_columns) -> Iterator[tuple[int | None, dict | None, limits.DataError | None]]:
    """(index, record, None) per row; (None, None, error) for a problem with the whole file. set_columns(names)
    records the schema's names and returns what is wrong with them."""
    DataError = limits.DataError
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq
    except ImportError:
        yield None, None, DataError("reading Parquet files needs pyarrow; install it with: pip install pyarrow")
        return
    try:
        parquet = pq.ParquetFile(path)
        if problem := set_columns(list(parquet.schema_arrow.names)):
            yield None, None, DataError(f"the file's schema {problem}")
            return
        if problem := metadata_problem(parquet):
            yield None, None, DataError(problem)
            return
        text = [f.name for f in parquet.schema_arrow if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
        parquet = pq.ParquetFile(path, read_dictionary=text)  # text stays encoded until its size is known
        decoded, index = 0, 0
        for batch in parquet.iter_batches(batch_size=_BATCH_ROWS):
            sizes = _row_bytes(batch)
            heaviest = pc.max(sizes).as_py() or 0
            if heaviest > limits.MAX_ROW_BYTES:
                row = index + pc.index(sizes, heaviest).as_py() + 1
                limit = limits.MAX_ROW_BYTES // _MB
                yield None, None, DataError(f"row {row:,} holds {_size(heaviest)}; a row holds at most {limit} MB")
                return
            weight = pc.sum(sizes).as_py() or 0
            decoded += weight
            if decoded > limits.MAX_DECODED_BYTES:
                limit = _size(limits.MAX_DECODED_BYTES)
                yield None, None, DataError(f"the file decodes to more than {limit}, the most a dataset may hold")
                return
            step = batch.num_rows if weight <= _CONVERT_BYTES else max(1, _CONVERT_BYTES // max(heaviest, 1))
            for start in range(0, batch.num_rows, step):
                for record in batch.slice(start, step).to_pylist():
                    index += 1
                    yield index, record, None
    except Exception as exc:  # pyarrow raises several types for corrupt files
        yield None, None, DataError(f"not a readable Parquet file: {exc}")
