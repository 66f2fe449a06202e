"""inspect_file must never raise, whatever bytes a user uploads (a seeded loop instead of hypothesis)."""

import json
import random

import pytest

from peftcore.data import inspect_file

VALID = {
    "csv": b'text,label\n"a, b",1\nplain,0\n',
    "tsv": b"sentence\tlabel\nnice film\t1\nbad film\t0\n",
    "jsonl": b'{"text": "a", "label": 1}\n{"text": "b", "label": 0}\n',
    "json": b'[{"text": "a", "label": 1}, {"text": "b", "label": 0}]',
    "parquet": b"PAR1\x15\x04\x15\x10PAR1",
}
ALPHABET = b'\x00\x01\n\r\t,"{}[]:\\ab01 \xff\xfe\xef\xbb\xbf\xc3\xa9'


def random_bytes(rng: random.Random) -> bytes:
    if rng.random() < 0.5:
        return bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 300)))
    return bytes(rng.choice(ALPHABET) for _ in range(rng.randint(0, 300)))


def mutate(rng: random.Random, data: bytes) -> bytes:
    data = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        position = rng.randint(0, max(0, len(data) - 1))
        choice = rng.random()
        if choice < 0.4 and data:
            data[position] = rng.getrandbits(8)
        elif choice < 0.7:
            data.insert(position, rng.choice(ALPHABET))
        elif data:
            del data[position]
    return bytes(data)


@pytest.mark.parametrize("fmt", sorted(VALID))
def test_any_bytes_give_a_report(tmp_path, fmt):
    rng = random.Random(f"peftcore-{fmt}")
    path = tmp_path / f"upload.{fmt}"
    for i in range(150):
        path.write_bytes(random_bytes(rng) if i % 2 else mutate(rng, VALID[fmt]))
        report = inspect_file(path, text_column="text", label_column="label", max_errors=5)
        json.dumps(report, allow_nan=False)
        assert isinstance(report["ok"], bool) and isinstance(report["rows"], int)
        assert report["ok"] == (report["error_count"] == 0 and report["rows"] > 0)
        assert len(report["errors"]) <= 5
        assert all(set(w) >= {"code", "message"} for w in report["warnings"])
