"""inspect_file must never raise, whatever bytes a user uploads: property-based with hypothesis, over raw bytes
and over valid files of every format with bytes changed, inserted and deleted."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from peftcore.data import inspect_file

VALID = {
    "csv": b'text,label\n"a, b",1\nplain,0\n',
    "tsv": b"sentence\tlabel\nnice film\t1\nbad film\t0\n",
    "jsonl": b'{"text": "a", "label": 1}\n{"text": "b", "label": 0}\n',
    "json": b'[{"text": "a", "label": 1}, {"text": "b", "label": 0}]',
    "parquet": b"PAR1\x15\x04\x15\x10PAR1",
}
# Bytes that mean something to one of the parsers, so random files hit their edge cases often.
SPECIAL = st.sampled_from(list(b'\x00\x01\n\r\t,"{}[]:\\ab01 \xff\xfe\xef\xbb\xbf\xc3\xa9'))
EDITS = st.lists(
    st.tuples(st.sampled_from(["set", "insert", "delete"]), st.integers(0, 10_000), SPECIAL), min_size=1, max_size=6
)


def edited(data: bytes, edits) -> bytes:
    out = bytearray(data)
    for kind, position, byte in edits:
        position = position % (len(out) + 1)
        if kind == "insert":
            out.insert(position, byte)
        elif out and position < len(out):
            if kind == "set":
                out[position] = byte
            else:
                del out[position]
    return bytes(out)


def uploads(fmt: str):
    return st.one_of(
        st.binary(max_size=300),
        st.lists(SPECIAL, max_size=300).map(bytes),
        EDITS.map(lambda edits: edited(VALID[fmt], edits)),
    )


def check_report(path, content: bytes) -> None:
    path.write_bytes(content)
    report = inspect_file(path, text_column="text", label_column="label", max_errors=5)
    json.dumps(report, allow_nan=False)
    assert isinstance(report["ok"], bool) and isinstance(report["rows"], int)
    assert report["ok"] == (report["error_count"] == 0 and report["rows"] > 0)
    assert len(report["errors"]) <= 5
    assert all(set(w) >= {"code", "message"} for w in report["warnings"])


@pytest.mark.parametrize("fmt", sorted(VALID))
def test_any_bytes_give_a_report(tmp_path, fmt):
    # derandomize: CI sees the same examples every run; the tmp_path file is rewritten per example.
    @settings(
        max_examples=150,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(content=uploads(fmt))
    def property_holds(content):
        check_report(tmp_path / f"upload.{fmt}", content)

    property_holds()
