"""Files that expand: limits on row size, rows and decompressed bytes, checked while a file streams (issue 18,
rows 1 and 3). A small Parquet file holding a huge string, or a million rows pointing at one long dictionary value,
is refused before it is decoded; a .json file is parsed one object at a time, in memory that does not grow with
the file; a line with no end is skipped, not read whole."""

import json
import subprocess
import sys
import tracemalloc

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from peftcore import read_limits
from peftcore.formats import RowReader
from peftcore.json_rows import lone_surrogate

MB = 1024 * 1024


def problems(path) -> list[tuple]:
    return [(row, str(error.message)) for row, _, error in RowReader(path) if error is not None]


def test_one_huge_string_in_a_tiny_parquet_file_is_refused_from_its_metadata(tmp_path):
    path = tmp_path / "bomb.parquet"
    pq.write_table(pa.table({"text": ["a" * (20 * MB)], "label": [1]}), path, compression="zstd")
    assert path.stat().st_size < 64 * 1024  # tiny on disk
    [(row, message)] = problems(path)
    assert row is None and "column 'text' decompresses to 20.0 MB for 1 rows" in message and "4 MB a row" in message


def _peak_rss_reading(path) -> int:
    """Peak memory (bytes) of a fresh process that reads the file through RowReader, less one that only imports."""
    code = (
        "import resource, sys\n"
        "from peftcore.formats import RowReader\n"
        "import pyarrow.parquet\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "errors = [str(e) for _, _, e in RowReader(sys.argv[1]) if e]\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base)\n"
        "print(errors[0] if errors else '')\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    grown, message = out.stdout.splitlines()[:2]
    return int(grown) * 1024, message


def test_many_rows_pointing_at_one_long_dictionary_value_are_refused_before_they_are_decoded(tmp_path):
    # 200 rows x 5 MB = 1 GB once decoded; the file stores the value once.
    path = tmp_path / "dictionary.parquet"
    value = "b" * (5 * MB)
    pq.write_table(pa.table({"text": pa.array([value] * 200).dictionary_encode(), "label": [0] * 200}), path)
    grown, message = _peak_rss_reading(path)
    assert "row 1 holds 5.0 MB; a row holds at most 4 MB" in message
    assert grown < 200 * MB, f"reading grew by {grown / MB:.0f} MB"


def test_a_column_that_decompresses_a_thousand_times_over_is_refused(tmp_path):
    path = tmp_path / "ratio.parquet"
    rows = [("c" * 70_000) for _ in range(1_000)]  # 70 MB of one letter, written without a dictionary
    pq.write_table(pa.table({"text": rows}), path, compression="zstd", use_dictionary=False)
    [(row, message)] = problems(path)
    assert row is None and "column 'text' decompresses" in message and "times over" in message


def test_limits_on_decoded_bytes_and_rows(tmp_path, monkeypatch):
    path = tmp_path / "many.parquet"
    pq.write_table(pa.table({"text": [f"row {i} " + "x" * 90 for i in range(5_000)]}), path)
    assert problems(path) == []
    repeated = tmp_path / "repeated.parquet"  # small in the metadata (one dictionary value), large decoded
    pq.write_table(pa.table({"text": pa.array(["y" * 100] * 5_000).dictionary_encode()}), repeated)
    monkeypatch.setattr(read_limits, "MAX_DECODED_BYTES", 200_000)
    [(row, message)] = problems(path)
    assert row is None and message == "the file decompresses to 0.5 MB; a dataset decompresses to at most 0.2 MB"
    [(row, message)] = problems(repeated)
    assert row is None and message == "the file decodes to more than 0.2 MB, the most a dataset may hold"
    monkeypatch.setattr(read_limits, "MAX_DECODED_BYTES", 8 * 1024**3)
    monkeypatch.setattr(read_limits, "MAX_ROWS", 1_000)
    assert problems(path) == [(None, "the file holds 5,000 rows; a dataset has at most 1,000 (split it)")]
    csv = tmp_path / "many.csv"
    csv.write_text("text\n" + "".join(f"row {i}\n" for i in range(5_000)))
    reader = RowReader(csv)
    found = list(reader)
    assert found[-1][2].message == "the file has more than 1,000 rows; split it into smaller files"
    assert reader.rows == 1_000


def test_a_line_longer_than_a_row_may_be_is_an_error_on_its_line_and_reading_goes_on(tmp_path):
    long = "z" * (5 * MB)
    for name, header, rows in (
        ("d.csv", "text,label\n", ["ok,1\n", f"{long},0\n", "fine,1\n"]),
        ("d.jsonl", "", ['{"text": "ok"}\n', json.dumps({"text": long}) + "\n", '{"text": "fine"}\n']),
    ):
        path = tmp_path / name
        path.write_text(header + "".join(rows))
        reader = RowReader(path)
        found = list(reader)
        line = 3 if name.endswith(".csv") else 2
        assert [(row, e.message) for row, _, e in found if e] == [
            (line, "this line is longer than 4 MB; a row holds at most 4 MB")
        ]
        assert reader.rows == 2


def test_a_json_array_is_read_in_memory_that_does_not_grow_with_the_file(tmp_path):
    path = tmp_path / "big.json"
    with path.open("w") as fh:  # about 24 MB
        fh.write("[")
        fh.write(",".join(json.dumps({"text": f"review {i} " + "w" * 200, "label": i % 2}) for i in range(100_000)))
        fh.write("]")
    tracemalloc.start()
    try:
        rows = sum(1 for _, record, error in RowReader(path) if record is not None)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert rows == 100_000
    assert peak < 8 * MB, f"peak {peak / MB:.1f} MB for a {path.stat().st_size / MB:.0f} MB file"


def test_a_json_object_larger_than_a_row_may_be_is_refused(tmp_path):
    path = tmp_path / "big-object.json"
    path.write_text(json.dumps([{"text": "fine"}, {"text": "y" * (6 * MB)}, {"text": "never read"}]))
    found = [(row, e.message) for row, _, e in RowReader(path) if e]
    assert found == [(2, "this object is larger than 4 MB; an object (a row) is at most 4 MB")]


@pytest.mark.parametrize(
    "text, where",
    [
        ('[{"a": "fine \\ud83d\\ude00"}]', None),  # a surrogate pair is one character
        ('[{"a": "literal \\\\ud800 text"}]', None),  # an escaped backslash, then plain letters
        ('[{"a": "x"},\n {"a": "half \\ud800"}]', "line 2, column 14"),
        ('[{"a": "low \\udc00 alone"}]', "line 1, column 13"),
    ],
)
def test_lone_surrogate_escapes_are_found_with_their_place(tmp_path, text, where):
    path = tmp_path / "s.json"
    path.write_text(text)
    assert lone_surrogate(path) == where


def test_a_surrogate_pair_cut_by_the_scan_window_is_still_a_pair(tmp_path):
    from peftcore import json_rows

    path = tmp_path / "edge.json"
    prefix = '[{"a": "' + "p" * (json_rows._CHUNK - 16)  # the pair starts 8 bytes before the first window's end
    path.write_text(prefix + '\\ud83d\\ude00"}]')
    assert lone_surrogate(path) is None
    path.write_text(prefix + '\\ud83d and no partner"}]')
    assert lone_surrogate(path) == f"line 1, column {len(prefix) + 1}"


def test_json_errors_say_where_and_what_to_do(tmp_path):
    path = tmp_path / "nan.json"
    path.write_text('[{"text": "a", "score": 1.0},\n {"text": "b", "score": NaN}]')
    [(row, message)] = problems(path)
    assert row is None and message.startswith("invalid JSON after object 1, by line 2: lexical error")
    assert "write null" in message


def test_values_nested_deeper_than_any_dataset_are_a_row_error_not_a_crash(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text('[{"text": "fine"}, {"text": ' + "[" * 20_000 + "]" * 20_000 + "}]")
    assert problems(path) == [(2, "holds values nested more than 32 deep")]
    lines = tmp_path / "deep.jsonl"
    lines.write_text('{"text": "fine"}\n{"text": ' + '{"a": ' * 40 + "1" + "}" * 40 + "}\n")
    assert problems(lines) == [(2, "holds values nested more than 32 deep")]


def test_a_big_row_hidden_in_a_nested_or_large_column_is_refused(tmp_path):
    messages = [[{"role": "user", "content": "hi"}]] * 300 + [[{"role": "user", "content": "m" * (6 * MB)}]]
    nested = tmp_path / "messages.parquet"
    pq.write_table(pa.table({"messages": messages}), nested, compression="zstd")
    [(row, message)] = problems(nested)
    assert row is None and "row 301 holds 6.0 MB" in message
    large = tmp_path / "large.parquet"
    pq.write_table(pa.table({"text": pa.array(["ok", "l" * (6 * MB)], pa.large_string())}), large, compression="zstd")
    [(row, message)] = problems(large)
    assert row is None and ("row 2 holds 6.0 MB" in message or "decompresses" in message)
