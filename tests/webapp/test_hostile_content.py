"""Text the database cannot store, anywhere in what a user sends: a NUL character or a lone surrogate (a JSON
escape such as \\ud800) in a dataset's rows, deep in the file where the binary sniff does not read, in its column
names, in playground texts or in any API text field. Each is a 400 naming where it is, and nothing is stored
(these were 500s)."""

import json

import pytest

from jobs.models import Blob, Dataset, Job, PlaygroundRun
from tests.factories import job_row
from tests.webapp.test_api import upload

FILLER = "".join(f"a clean review number {i}\t1\n" for i in range(2000))  # well past the first 8 KB


@pytest.mark.parametrize(
    "name, content, where",
    [
        ("late-nul.tsv", "sentence\tlabel\n" + FILLER + "bad \x00 text\t0\n", "row 2002"),
        ("nul.jsonl", '{"sentence": "ok", "label": 1}\n{"sentence": "bad \\u0000 one", "label": 0}\n', "row 2"),
        ("surrogate.jsonl", '{"sentence": "ok", "label": 1}\n{"sentence": "half \\ud800", "label": 0}\n', "row 2"),
        ("key.jsonl", '{"sentence": "ok", "lab\\u0000el": 1}\n', "row 1"),
        ("nested.json", json.dumps([{"messages": [{"role": "user", "content": "x\ud800"}]}]), "line 1, column 46"),
    ],
)
def test_unstorable_text_in_a_dataset_is_a_400_naming_row_and_column(alice_api, tmp_path, name, content, where):
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8", "surrogatepass"))
    response = upload(alice_api, path, name=name)
    assert response.status_code == 400, response.content
    messages = " ".join(f"row {e['row']}: {e['message']}" for e in response.json()["errors"])
    assert where in messages and ("NUL" in messages or "lone surrogate" in messages) and "column" in messages
    assert not Dataset.objects.exists() and not Blob.objects.exists()


@pytest.mark.parametrize("text", ["a \x00 b", "a \ud800 b"])
def test_unstorable_playground_text_is_a_400(alice_api, dataset, tiny_model, text):
    job = job_row(dataset, tiny_model, status=Job.Status.SUCCEEDED)
    body = json.dumps({"texts": ["fine", text]}, ensure_ascii=True)  # JSON spells both as \u escapes
    response = alice_api.post(f"/api/v1/jobs/{job.pk}/playground", body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert not PlaygroundRun.objects.exists()


def test_a_lone_surrogate_in_any_api_text_field_is_a_400(alice_api, dataset, tiny_model):
    body = json.dumps(
        {
            "dataset": dataset.pk,
            "base_model": tiny_model.pk,
            "method": "lora",
            "text_column": "sentence",
            "label_column": "label",
            "name": "half \ud800 name",
        },
        ensure_ascii=True,
    )
    response = alice_api.post("/api/v1/jobs", body, content_type="application/json")
    assert response.status_code == 400 and "lone surrogate" in response.json()["detail"]
    assert not Job.objects.exists()
