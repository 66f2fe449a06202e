"""A `.json` dataset (one top-level list of objects) read as a stream: ijson's C parser hands over one object at a
time, so memory stays flat whatever the file's size (json.loads of a 54 MB file took 510 MB), and an object larger
than limits.MAX_ROW_BYTES is refused before it is built.

ijson turns a lone surrogate escape ("\\ud800") into "?" where json.loads keeps it; a first pass over the raw
bytes finds such an escape, so the text is refused as the other formats refuse it, not silently changed.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from . import read_limits as limits

_CHUNK = 1024 * 1024
_PAIR = len(b"\\ud800\\udc00")
_KEEP = 2 * _PAIR
_BUFFER = 64 * 1024  # what ijson reads at a time
# A high surrogate escape not followed by a low one, or a low one not preceded by a high one.
_LONE_SURROGATE = re.compile(
    rb"(?<!\\)\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    rb"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})(?<!\\)\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)


class _TooLarge(Exception):
    pass


class _Metered:
    """A binary file that counts what the parser has read since the last object, and stops it past the limit."""

    def __init__(self, fh: BinaryIO, limit: int):
        self.fh, self.limit, self.read_bytes, self.mark, self.lines = fh, limit, 0, 0, 1

    def read(self, size: int = -1) -> bytes:
        data = self.fh.read(size)
        self.read_bytes += len(data)
        self.lines += data.count(b"\n")
        if self.read_bytes - self.mark > self.limit + _BUFFER:  # slack: the parser reads ahead by a buffer
            raise _TooLarge
        return data


def lone_surrogate(path: Path) -> str | None:
    """Where the file holds a lone surrogate escape, as "line L, column C", or None (one pass, constant memory).

    Windows of the file overlap by _KEEP bytes: an escape is judged once 12 bytes follow it (room for its
    partner) and 7 precede it (room for the partner before it and a backslash that escapes it)."""
    line, line_start, offset, tail, start = 1, 0, 0, b"", 0  # offset: where `data` starts in the file
    with path.open("rb") as fh:
        while True:
            chunk = fh.read(_CHUNK)
            data = tail + chunk
            match = _LONE_SURROGATE.search(data, start)
            if match and (not chunk or match.end() <= len(data) - _PAIR):
                before = data[: match.start()]
                newline = before.rfind(b"\n")
                first = offset + newline + 1 if newline >= 0 else line_start
                line += before.count(b"\n")
                return f"line {line}, column {offset + match.start() - first + 1}"
            if not chunk:
                return None
            keep = min(len(data), _KEEP)
            done = data[: len(data) - keep]
            if (newline := done.rfind(b"\n")) >= 0:
                line += done.count(b"\n")
                line_start = offset + newline + 1
            offset += len(done)
            tail, start = data[len(data) - keep :], max(0, keep - _PAIR - 5)


def json_rows(path: Path, add_columns) -> Iterator[tuple[int | None, dict | None, limits.DataError | None]]:
    """(index, object, None) per object of the top-level list, (index, None, error) for what is not an object,
    and (None, None, error) for a problem with the whole file. add_columns(record) records the object's keys and
    returns what is wrong with them."""
    import ijson

    DataError = limits.DataError
    if where := lone_surrogate(path):
        yield (
            None,
            None,
            DataError(f"{where} holds a lone surrogate (an invalid \\u escape); remove it and upload again"),
        )
        return
    with path.open("rb") as raw:
        start = len(codecs.BOM_UTF8) if raw.read(3) == codecs.BOM_UTF8 else 0
        raw.seek(start)
        first = b""
        while not first and (chunk := raw.read(64 * 1024)):  # the first character after any whitespace
            first = chunk.lstrip()[:1]
        raw.seek(start)
        if not first:
            yield None, None, DataError("the file is empty")
            return
        if first != b"[":
            kind = "an object" if first == b"{" else "something else"
            hint = " (for one object per line, name the file .jsonl)" if first == b"{" else ""
            yield (
                None,
                None,
                DataError(f"expected a list of objects [{{...}}, ...] at the top level, found {kind}{hint}"),
            )
            return
        metered = _Metered(raw, limits.MAX_ROW_BYTES)
        index = 0
        try:
            for obj in ijson.items(metered, "item", use_float=True, buf_size=_BUFFER):
                index += 1
                metered.mark = metered.read_bytes
                if not isinstance(obj, dict):
                    found = limits.json_kind(obj)
                    yield index, None, DataError(f"expected a JSON object {{...}}, found {found}", index)
                    continue
                if problem := add_columns(obj):
                    yield index, None, DataError(f"this object {problem}", index)
                    return
                yield index, obj, None
        except _TooLarge:
            limit = limits.MAX_ROW_BYTES // (1024 * 1024)
            yield (
                index + 1,
                None,
                DataError(f"this object is larger than {limit} MB; an object (a row) is at most {limit} MB", index + 1),
            )
        except ijson.JSONError as exc:
            detail = str(exc).splitlines()[0] if str(exc) else "the file ends too early"
            where = f"after object {index:,}, by line {metered.lines:,}"  # the parser reads ahead: the line is a bound
            hint = " (NaN and Infinity are not JSON: write null)" if "invalid char" in detail else ""
            yield None, None, DataError(f"invalid JSON {where}: {_plain(detail)}{hint}")


def _plain(detail: str) -> str:
    """yajl's message without the b'...' wrapper it sometimes carries."""
    return detail[2:] if detail.startswith(("b'", 'b"')) else detail
