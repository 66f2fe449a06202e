"""The hostile-input suite (issue 18): generated and hand-made hostile inputs thrown at every upload format
(through the API and the dataset page), at every browser form and at the API's writes. Every answer is below
500, and afterwards the database and the upload folder hold no orphan (a blob nothing points at, a temporary
upload file). The bomb cases also record how much the web process's peak memory grew.

`FUZZ_REPORT=fuzz.json .venv/bin/pytest tests/webapp/test_fuzz_suite.py` writes the figures that
docs/benchmarks.md quotes (inputs tried, server errors, orphans, peak memory growth for the bombs); each test adds
its own line, so the file is complete once the module has run. The API's every operation is also fuzzed from
its OpenAPI schema by tests/webapp/test_api_schema.py (schemathesis)."""

import io
import json
import os
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.conf import settings as django_settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from hypothesis import HealthCheck, given, settings

from jobs.models import Job
from jobs.services.storage_sweep import orphan_blobs
from teams.models import Membership
from tests.factories import job_row
from tests.peftcore.test_data_fuzz import uploads
from tests.peftcore.test_upload_limits import _peak_rss_reading

pytestmark = pytest.mark.django_db
MB = 1024 * 1024
FORMATS = ("csv", "tsv", "jsonl", "json", "parquet")
TEXTS = [
    "a\x00b",
    "half \ud800",
    "x" * 5000,
    "1e300",
    "inf",
    "nan",
    "-1",
    "99999999999999999999",
    "<script>alert(1)</script>",
    "'; DROP TABLE jobs_job; --",
    "../../etc/passwd",
    "",
    " ",
    "\u202eevil",
    "ü" * 300,
]


def _record(name: str, **figures) -> None:
    if target := os.environ.get("FUZZ_REPORT"):
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"test": name, **figures}) + "\n")


def _bytes(content) -> bytes:
    return content.encode("utf-8", "surrogatepass") if isinstance(content, str) else content


def _parquet(table: pa.Table, **options) -> bytes:
    out = io.BytesIO()
    pq.write_table(table, out, **options)
    return out.getvalue()


def _no_orphans() -> None:
    assert not orphan_blobs(older_than=timedelta(0)).exists()
    assert not [p for p in Path(django_settings.FILE_UPLOAD_TEMP_DIR).iterdir() if p.is_file()]


@pytest.fixture
def api(alice):
    from tests.conftest import api_client

    client = api_client(alice)
    client.raise_request_exception = False
    return client


def _upload(client, name: str, content: bytes, url="/api/v1/datasets", **fields):
    return client.post(url, {"file": SimpleUploadedFile(name, content), **fields})


# --- every upload format, generated -------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_generated_files_of_every_format_never_fail_the_upload(api, fmt):
    statuses = []

    @settings(
        max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], database=None
    )
    @given(content=uploads(fmt))
    def run(content):
        response = _upload(api, f"fuzz.{fmt}", content, text_column="text", label_column="label")
        statuses.append(response.status_code)
        assert response.status_code < 500, (content[:200], response.content[:300])

    run()
    _no_orphans()
    _record(f"generated {fmt}", inputs=len(statuses), server_errors=0, stored=statuses.count(201))


# --- hand-made hostile files, bombs among them ------------------------------------------------------------------


def _hostile_files() -> list[tuple[str, bytes]]:
    long_line = "text,label\n" + "y" * (5 * MB) + ",1\n"
    return [
        ("parquet-one-huge-string.parquet", _parquet(pa.table({"text": ["a" * (64 * MB)]}), compression="zstd")),
        (
            "parquet-dictionary-bomb.parquet",
            _parquet(pa.table({"text": pa.array(["b" * (5 * MB)] * 400).dictionary_encode()}), compression="zstd"),
        ),
        (
            "parquet-ratio-bomb.parquet",
            _parquet(pa.table({"text": ["c" * 100_000] * 800}), compression="zstd", use_dictionary=False),
        ),
        ("parquet-duplicate-columns.parquet", _parquet(pa.Table.from_arrays([pa.array(["a"])] * 2, ["t", "t"]))),
        ("columns.csv", ",".join(f"c{i}" for i in range(100_000)) + "\n" + ",".join("1" * 100_000) + "\n"),
        ("long-column-name.csv", "a" * 300 + ",label\nx,1\n"),
        ("long-line.csv", long_line),
        ("long-line.jsonl", '{"text": "' + "z" * (5 * MB) + '", "label": 1}\n'),
        ("big-object.json", '[{"text": "' + "w" * (6 * MB) + '", "label": 1}]'),
        ("deep.json", "[" + '{"a":' * 50_000 + "1" + "}" * 50_000 + "]"),
        ("deep.jsonl", '{"a":' * 50_000 + "1" + "}" * 50_000 + "\n"),
        ("nan.json", '[{"text": "a", "label": NaN}]'),
        ("object.json", '{"text": "a", "label": 1}'),
        ("surrogate.json", '[{"text": "\\udc00", "label": 1}]'),
        ("nul.tsv", "sentence\tlabel\nbad \x00 text\t1\n"),
        ("nul-name.csv", "te\x00xt,label\na,1\n"),
        ("utf16.csv", "text,label\na,1\n".encode("utf-16")),
        ("zip.csv", b"PK\x03\x04" + b"\x00" * 100),
        ("bom-only.csv", b"\xef\xbb\xbf"),
        ("header-only.csv", "text,label\n"),
        ("quote-open.csv", 'text,label\n"never closed,1\nnext,0\n'),
        ("latin1.csv", "text,label\ncaf\xe9,1\n".encode("latin-1")),
        ("empty.json", b""),
        ("whitespace.json", b"   \n\t "),
        ("not-parquet.parquet", b"PAR1 but not really"),
        ("truncated.parquet", _parquet(pa.table({"text": ["a", "b"], "label": [1, 0]}))[:-20]),
        ("crlf.tsv", "sentence\tlabel\r\nfine\t1\r\n"),
        ("mixed-types.jsonl", '{"text": 1, "label": [1]}\n{"text": {"a": 1}, "label": null}\n'),
        ("huge-number.jsonl", '{"text": "a", "label": 1e400}\n'),
        ("control.csv", "text,label\n\x1b[31mred\x1b[0m,1\n"),
    ]


def test_hand_made_hostile_files_are_refused_clearly_and_bombs_cost_little_memory(api, alice, tmp_path):
    page = Client(raise_request_exception=False)
    page.force_login(alice)
    peaks, statuses = {}, []
    for name, content in _hostile_files():
        for client, url in ((api, "/api/v1/datasets"), (page, "/datasets/")):
            response = _upload(client, name, _bytes(content), url=url, text_column="text", label_column="label")
            statuses.append(response.status_code)
            assert response.status_code < 500, (name, url, response.content[:300])
        if any(word in name for word in ("bomb", "huge", "long-line", "big")):
            # What reading it costs a fresh process (this one's peak is long past): the web process's share.
            path = tmp_path / name
            path.write_bytes(_bytes(content))
            grown, _ = _peak_rss_reading(path)
            peaks[name] = round(grown / MB)
            assert grown < 256 * MB, (name, grown)
    _no_orphans()  # what was refused left nothing; what was stored (a CRLF file is fine) has its dataset
    _record("hand-made files", inputs=len(statuses), server_errors=0, peak_growth_mb=peaks)


# --- every browser form -----------------------------------------------------------------------------------------


def _forms(job_id: int, dataset_id: int, model_id: int) -> list[tuple[str, list[str]]]:
    """(URL, the fields it reads) of every browser write a member or admin makes."""
    return [
        ("/login/", ["username", "password"]),
        ("/password-reset/", ["email"]),
        ("/datasets/", ["name", "text_column", "label_column"]),
        ("/jobs/new/", ["name", "dataset", "base_model", "method", "text_column", "label_column", "p_epochs", "m_r"]),
        ("/jobs/new/count/", ["base_model", "method", "m_r", "m_layers"]),
        ("/jobs/new/tokens/", ["dataset", "base_model", "text_column", "p_max_length", "task"]),
        (f"/jobs/{job_id}/playground/", ["texts", "max_new_tokens"]),
        (f"/jobs/{job_id}/cancel/", ["next"]),
        ("/team/switch/", ["team", "next"]),
        ("/team/members/", ["username", "role"]),
        ("/team/quotas/", ["max_concurrent_jobs", "compute_hours_per_month", "max_storage_gb"]),
        ("/team/webhooks/", ["url", "events"]),
        ("/team/models/", ["name", "source", "revision"]),
        ("/team/invitations/", ["email", "role"]),
        ("/account/tokens/", ["team", "name"]),
        ("/team/delete/", ["confirm"]),
    ]


def test_every_browser_form_answers_hostile_values_without_a_server_error(alice, dataset, tiny_model):
    Membership.objects.filter(user=alice).update(role=Membership.Role.OWNER)
    job = job_row(dataset, tiny_model, status=Job.Status.SUCCEEDED)
    client = Client(raise_request_exception=False)
    tried = 0
    for url, fields in _forms(job.pk, dataset.pk, tiny_model.pk):
        for field in fields:
            for text in TEXTS:
                client.force_login(alice)
                valid = {"dataset": dataset.pk, "base_model": tiny_model.pk, "method": "lora", "text_column": "x"}
                # A browser-like form body, byte by byte: a lone surrogate arrives as bytes no UTF-8 decoder
                # accepts, which a browser never sends but an attacker can.
                sent = {k: str(v).encode("utf-8", "surrogatepass") for k, v in {**valid, field: text}.items()}
                response = client.post(url, urlencode(sent), content_type="application/x-www-form-urlencoded")
                tried += 1
                assert response.status_code < 500, (url, field, repr(text)[:40], response.status_code)
    _no_orphans()
    _record("browser forms", inputs=tried, server_errors=0)


# --- the API's writes, hand-made (schemathesis covers every operation from the schema) --------------------------


def test_api_writes_answer_hostile_bodies_without_a_server_error(api, dataset, tiny_model):
    job = job_row(dataset, tiny_model, status=Job.Status.SUCCEEDED)
    bodies = [
        ("/api/v1/jobs", {"dataset_id": dataset.pk, "base_model_id": tiny_model.pk, "method": "lora"}),
        (f"/api/v1/jobs/{job.pk}/playground", {"texts": ["fine"]}),
        ("/api/v1/datasets/0/token-stats", {}),
    ]
    tried = 0
    for url, base in bodies:
        for key in [*base, "params", "method_params", "name", "text_column"]:
            for text in [*TEXTS, 1e308, -(2**63), 2**64, None, [], {}, [[[]]], {"a": {"b": "\x00"}}]:
                body = json.dumps({**base, key: text}, ensure_ascii=True)
                response = api.post(url, body, content_type="application/json")
                tried += 1
                assert response.status_code < 500, (url, key, repr(text)[:40], response.content[:200])
    for raw in (b"{", b"\xff\xfe", b"[]", b"null", b'{"texts": "' + b"a" * (3 * MB) + b'"}'):
        response = api.post(f"/api/v1/jobs/{job.pk}/playground", raw, content_type="application/json")
        tried += 1
        assert response.status_code < 500, (raw[:40], response.content[:200])
    _no_orphans()
    _record("API writes", inputs=tried, server_errors=0)
