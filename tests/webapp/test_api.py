from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from jobs.models import Dataset
from tests.factories import job_for


def upload(client, path_or_bytes, name="data.tsv", **fields):
    content = path_or_bytes.read_bytes() if hasattr(path_or_bytes, "read_bytes") else path_or_bytes
    return client.post("/api/v1/datasets", {"file": SimpleUploadedFile(name, content), **fields})


def test_api_requires_a_token(db):
    assert Client().get("/api/v1/jobs").status_code == 401
    assert Client(headers={"Authorization": "Bearer fts_not-a-real-token"}).get("/api/v1/jobs").status_code == 401


def test_openapi_schema_lists_the_endpoints(alice_api):
    schema = alice_api.get("/api/v1/openapi.json").json()
    for path in (
        "/api/v1/datasets",
        "/api/v1/jobs",
        "/api/v1/jobs/{job_id}",
        "/api/v1/jobs/{job_id}/cancel",
        "/api/v1/jobs/{job_id}/adapter",
        "/api/v1/models",
    ):
        assert path in schema["paths"], path


def test_upload_returns_rows_and_columns(alice_api, sst2_sample):
    response = upload(alice_api, sst2_sample, name="sst2.tsv")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["rows"] == 200 and body["columns"] == ["sentence", "label"] and body["id"]


def test_upload_of_a_bad_file_names_rows_and_stores_nothing(alice_api):
    response = upload(
        alice_api,
        b'{"text": "ok", "label": 1}\n{"text": "broken\n{"text": "", "label": 0}\n',
        name="bad.jsonl",
        text_column="text",
        label_column="label",
    )
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert {e["row"] for e in errors} >= {2, 3}, errors
    assert Dataset.objects.count() == 0


def test_upload_with_an_unknown_extension_is_refused(alice_api):
    response = upload(alice_api, b"MZ\x90\x00", name="model.exe")
    assert response.status_code == 400 and "unsupported" in response.json()["detail"]


def test_oversized_upload_is_refused(alice_api, settings, sst2_sample):
    settings.MAX_UPLOAD_BYTES = 100
    response = upload(alice_api, sst2_sample, name="sst2.tsv")
    assert response.status_code == 413 and "limit" in response.json()["detail"]
    assert Dataset.objects.count() == 0


def test_models_lists_registered_base_models(alice_api, tiny_model):
    ids = [m["id"] for m in alice_api.get("/api/v1/models").json()]
    assert tiny_model.pk in ids


def test_job_create_validates_and_returns_field_errors(alice_api, sst2_sample, tiny_model):
    dataset = upload(alice_api, sst2_sample, name="sst2.tsv").json()["id"]
    bad = alice_api.post(
        "/api/v1/jobs",
        {
            "dataset": dataset,
            "base_model": tiny_model.pk,
            "method": "lora",
            "text_column": "sentence",
            "label_column": "missing",
            "params": {"batch_size": -1},
        },
        content_type="application/json",
    )
    assert bad.status_code == 400
    assert set(bad.json()["errors"]) == {"label_column", "params.batch_size"}


def test_values_the_worker_could_not_read_are_refused_at_submit(alice_api, sst2_sample, tiny_model):
    # Once accepted, a 5,000-digit layer list failed on the worker as an "internal" error.
    dataset = upload(alice_api, sst2_sample, name="sst2.tsv").json()["id"]
    job = {
        "dataset": dataset,
        "base_model": tiny_model.pk,
        "method": "lora",
        "text_column": "sentence",
        "label_column": "label",
    }
    cases = [
        ({"method_params": {"layers": "1" * 5000}}, "method_params.layers", "at most 1000 characters"),
        ({"method_params": {"layers": "1" * 30}}, "method_params.layers", "use 'all', 'last 2'"),
        ({"method_params": {"layers": "last two"}}, "method_params.layers", "is not understood"),
        ({"params": {"max_rows": 10**30}}, "params.max_rows", "must be between 1 and 100000000"),
        ({"params": {"quantize": "8bit"}}, "params.quantize", "must be one of"),
        ({"method": "loha", "params": {"quantize": "4bit"}}, "params.quantize", "works with LoRA, (IA)³, AdaLoRA"),
        ({"method_params": {"activated": True}}, "method_params.activated", "aLoRA switches the adapter on"),
    ]
    for fields, field, says in cases:
        bad = alice_api.post("/api/v1/jobs", {**job, **fields}, content_type="application/json")
        assert bad.status_code == 400 and says in bad.json()["errors"][field], (fields, bad.json())
    good = alice_api.post(
        "/api/v1/jobs", {**job, "method_params": {"layers": " 0 - 1 "}}, content_type="application/json"
    )
    assert good.status_code == 201, good.json()


def test_job_create_then_get_and_cancel(alice_api, sst2_sample, tiny_model, django_capture_on_commit_callbacks):
    dataset = upload(alice_api, sst2_sample, name="sst2.tsv").json()["id"]
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        created = alice_api.post(
            "/api/v1/jobs",
            {
                "dataset": dataset,
                "base_model": tiny_model.pk,
                "method": "ia3",
                "task": "text-classification",
                "text_column": "sentence",
                "label_column": "label",
                "params": {"epochs": 1},
            },
            content_type="application/json",
        )
    assert created.status_code == 201, created.content
    assert len(callbacks) == 1
    job = created.json()
    assert job["status"] == "queued" and job["params"]["epochs"] == 1
    assert alice_api.get(f"/api/v1/jobs/{job['id']}").json()["status"] == "queued"
    assert alice_api.get(f"/api/v1/jobs/{job['id']}/adapter").status_code == 404
    assert alice_api.post(f"/api/v1/jobs/{job['id']}/cancel").json()["status"] == "cancelled"


def test_job_list_query_count_does_not_grow_with_jobs(
    alice_api, alice, sst2_sample, tiny_model, django_assert_max_num_queries
):
    dataset = Dataset.objects.get(pk=upload(alice_api, sst2_sample, name="s.tsv").json()["id"])
    for _ in range(30):
        job_for(alice, dataset, tiny_model)
    with django_assert_max_num_queries(4):
        assert len(alice_api.get("/api/v1/jobs").json()) == 30


def test_upload_over_the_limit_is_cut_off_while_streaming(alice_api, settings, tmp_path):
    settings.MAX_UPLOAD_BYTES = 10_000
    big = tmp_path / "big.csv"
    big.write_bytes(b"text,label\n" + b"some words,1\n" * 100_000)  # 1.2 MB, far over the limit
    response = upload(alice_api, big, name="big.csv")
    assert response.status_code == 413 and "10,000" in response.json()["detail"]
    assert Dataset.objects.count() == 0


def test_upload_without_a_file_field_says_what_to_send(alice_api):
    response = alice_api.post("/api/v1/datasets", {"name": "x"})
    assert response.status_code == 400 and "'file'" in response.json()["detail"]


def test_upload_reports_warnings_that_do_not_block_it(alice_api):
    content = b"text\tlabel\n" + b"".join(b"row %d\tbig\n" % i for i in range(30)) + b"row 3\tsmall\n"
    response = upload(alice_api, content, name="w.tsv", text_column="text", label_column="label")
    assert response.status_code == 201
    codes = {w["code"]: w for w in response.json()["warnings"]}
    assert codes["duplicates"]["rows"] == [32] and codes["conflicting_labels"]["rows"] == [32]
    assert set(codes) == {"duplicates", "conflicting_labels", "too_few_rows", "imbalance"}
    detail = alice_api.get(f"/api/v1/datasets/{response.json()['id']}").json()
    assert detail["warnings"] == response.json()["warnings"]


def test_the_dataset_list_reads_warnings_without_a_query_per_dataset(alice_api, django_assert_max_num_queries):
    content = b"text\tlabel\na\t1\na\t0\nb\t1\n"
    for i in range(6):
        upload(alice_api, content, name=f"d{i}.tsv", text_column="text", label_column="label")
    alice_api.get("/api/v1/datasets")
    with django_assert_max_num_queries(6):
        rows = alice_api.get("/api/v1/datasets").json()
    assert len(rows) == 6 and all(
        {"duplicates", "conflicting_labels"} <= {w["code"] for w in r["warnings"]} for r in rows
    )
