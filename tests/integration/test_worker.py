"""End to end on real services: the API, Postgres, Redis, a Celery worker process and a training child."""

import io
import json
import zipfile

import pytest
import torch
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from peft import PeftModel
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from jobs.models import Artifact, EvalReport, Job, MetricPoint
from tests.conftest import wait_for
from tests.integration.runtime_support import training_pids

pytestmark = pytest.mark.django_db(transaction=True)


def _submit(api, data_path, model, **params):
    dataset = api.post("/api/v1/datasets", {"file": SimpleUploadedFile("train.tsv", data_path.read_bytes())})
    assert dataset.status_code == 201, dataset.content
    response = api.post(
        "/api/v1/jobs",
        {
            "dataset": dataset.json()["id"],
            "base_model": model.pk,
            "method": "lora",
            "task": "text-classification",
            "text_column": "sentence",
            "label_column": "label",
            "params": params,
        },
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    return response.json()["id"]


def _training_processes(job_id):
    return training_pids(job_id)


def _status(api, job_id):
    return api.get(f"/api/v1/jobs/{job_id}").json()


def test_job_trains_through_the_worker_and_the_adapter_loads_with_plain_peft(
    celery_worker_process, alice_api, sst2_sample, tiny_model, tiny_model_dir, tmp_path
):
    job_id = _submit(alice_api, sst2_sample, tiny_model, epochs=1, batch_size=16, max_length=32)
    final = wait_for(
        lambda: (s := _status(alice_api, job_id))["status"] in ("succeeded", "failed", "cancelled") and s,
        timeout=240,
        what="the job to finish",
    )
    assert final["status"] == "succeeded", final
    assert 0.0 <= final["metrics"]["accuracy"] <= 1.0 and "macro_f1" in final["metrics"]
    assert final["progress"]["step"] == final["progress"]["total"] > 0
    assert MetricPoint.objects.filter(job_id=job_id, name="loss").count() == final["progress"]["total"]
    report = EvalReport.objects.get(job_id=job_id).data
    assert report["confusion_matrix"] and report["baseline_metrics"]["accuracy"] is not None
    assert report["efficiency"]["adapter_bytes"] > 0 and report["lineage"]["dataset_sha256"]
    # The stored report renders: gain over the untrained model, per-class figures, efficiency, lineage.
    client = Client()
    client.force_login(Job.objects.get(pk=job_id).created_by)
    page = client.get(f"/jobs/{job_id}/").content.decode()
    for part in ('id="baseline-gain"', 'id="per-class"', 'id="efficiency"', 'id="lineage"'):
        assert part in page
    assert report["lineage"]["dataset_sha256"] in page

    # The attempt's log stays with the job: its story, then the training process's own output.
    log = alice_api.get(f"/api/v1/jobs/{job_id}/log")
    assert log.status_code == 200 and log["Content-Type"].startswith("text/plain")
    text = b"".join(log.streaming_content).decode()
    assert text.startswith("=== attempt 1 on ") and "loading the model" in text and "evaluated at step" in text
    assert "done: the adapter is saved" in text and "--- the training process's output" in text

    response = alice_api.get(final["adapter_url"])
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    payload = b"".join(response.streaming_content)
    assert len(payload) == Artifact.objects.get(job_id=job_id, kind=Artifact.Kind.ADAPTER).size_bytes
    folder = tmp_path / "adapter"
    zipfile.ZipFile(io.BytesIO(payload)).extractall(folder)
    names = {p.name for p in folder.iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json", "README.md", "labels.json"} <= names
    assert not any(n.endswith((".bin", ".pt", ".pkl")) for n in names)

    labels = json.loads((folder / "labels.json").read_text())["labels"]
    base = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=len(labels))
    model = PeftModel.from_pretrained(base, folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    with torch.no_grad():
        logits = model(**tokenizer(["a gripping, beautiful film"], return_tensors="pt")).logits
    assert logits.shape == (1, len(labels))

    # The playground: the maintenance worker runs the stored adapter and gives what the downloaded one gives.
    run = alice_api.post(
        f"/api/v1/jobs/{job_id}/playground", {"texts": ["a gripping, beautiful film"]}, content_type="application/json"
    )
    assert run.status_code == 202, run.content
    url = f"/api/v1/jobs/{job_id}/playground/{run.json()['id']}"
    tried = wait_for(
        lambda: (r := alice_api.get(url).json())["status"] != "pending" and r,
        timeout=120,
        what="the playground prediction",
    )
    assert tried["status"] == "done", tried
    probabilities = torch.softmax(logits, dim=-1)[0].tolist()
    assert [tried["predictions"][0]["probabilities"][label] for label in labels] == pytest.approx(
        probabilities, abs=1e-4
    )


def test_a_running_job_can_be_cancelled(celery_worker_process, alice_api, sst2_sample, tiny_model):
    job_id = _submit(alice_api, sst2_sample, tiny_model, epochs=100, batch_size=2, max_length=32, patience=0)
    wait_for(lambda: _status(alice_api, job_id)["progress"]["step"] > 0, timeout=120, what="training to start")
    assert alice_api.post(f"/api/v1/jobs/{job_id}/cancel").status_code == 200
    final = wait_for(
        lambda: (s := _status(alice_api, job_id))["status"] != "running" and s, timeout=60, what="the job to stop"
    )
    assert final["status"] == "cancelled" and final["error"]["kind"] == "cancelled"
    assert wait_for(lambda: not _training_processes(job_id), timeout=30, what="the training child to die") is not None
    assert not Artifact.objects.filter(job_id=job_id, kind=Artifact.Kind.ADAPTER).exists()
    assert alice_api.get(f"/api/v1/jobs/{job_id}/adapter").status_code == 404
    assert Job.objects.get(pk=job_id).finished_at is not None


def test_a_job_stacked_on_a_finished_jobs_adapter_trains_and_carries_it(
    celery_worker_process, alice_api, sst2_sample, tiny_model, tiny_model_dir, tmp_path
):
    import peftcore
    from peftcore.tasks import load_tokenizer
    from peftcore.tasks.text_classification import load_model

    first = _submit(alice_api, sst2_sample, tiny_model, epochs=1, batch_size=16, max_length=32)
    done = wait_for(
        lambda: (s := _status(alice_api, first))["status"] in ("succeeded", "failed") and s,
        timeout=240,
        what="the first job",
    )
    assert done["status"] == "succeeded", done
    response = alice_api.post(
        "/api/v1/jobs",
        {
            "dataset": done["dataset"],
            "base_model": tiny_model.pk,
            "method": "ia3",
            "task": "text-classification",
            "text_column": "sentence",
            "label_column": "label",
            "params": {"epochs": 1, "max_length": 32},
            "start_from": first,
            "start_mode": "stack",
        },
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    second = response.json()["id"]
    assert response.json()["start_from"] == first and response.json()["start_mode"] == "stack"
    final = wait_for(
        lambda: (s := _status(alice_api, second))["status"] in ("succeeded", "failed") and s,
        timeout=240,
        what="the stacked job",
    )
    assert final["status"] == "succeeded", final

    folder = tmp_path / "stacked"
    zipfile.ZipFile(io.BytesIO(b"".join(alice_api.get(final["adapter_url"]).streaming_content))).extractall(folder)
    assert (folder / "base_adapter" / "adapter_config.json").is_file()  # the first job's LoRA, carried along
    assert json.loads((folder / "adapter_config.json").read_text())["peft_type"] == "IA3"
    labels = json.loads((folder / "labels.json").read_text())["labels"]
    tokenizer = load_tokenizer(tiny_model_dir)
    model = peftcore.load_adapter(load_model(tiny_model_dir, labels, tokenizer.pad_token_id)[0], folder).eval()
    with torch.no_grad():
        assert model(**tokenizer(["a gripping, beautiful film"], return_tensors="pt")).logits.shape == (1, 2)


def test_the_maintenance_worker_counts_token_lengths_for_the_preflight_report(
    celery_worker_process, alice_api, sst2_sample, tiny_model
):
    dataset = alice_api.post("/api/v1/datasets", {"file": SimpleUploadedFile("train.tsv", sst2_sample.read_bytes())})
    url = f"/api/v1/datasets/{dataset.json()['id']}/token-stats?base_model={tiny_model.pk}&column=sentence&max_length=8"
    assert alice_api.get(url).status_code == 202
    done = wait_for(
        lambda: (r := alice_api.get(url)).status_code == 200 and r.json(), timeout=120, what="the token lengths"
    )
    assert done["status"] == "done" and done["rows"] == 200 and 0 < done["p50"] <= done["p95"] <= done["max"]
    assert done["truncated_rows"] > 0 and done["warning"]


def test_an_sft_job_trains_through_the_worker_and_stores_its_generation_report(
    celery_worker_process, alice_api, tmp_path
):
    from django.conf import settings

    from jobs.services import base_model_register
    from tests.tiny_models import make_tiny_llama

    make_tiny_llama(settings.MODEL_ROOT / "tiny-llama")
    model = base_model_register(name="tiny random Llama", source="local:tiny-llama")
    rows = [{"task": {"question": f"colour of item {i}"}, "answer": ("red", "blue")[i % 2]} for i in range(40)]
    data = "".join(json.dumps(r) + "\n" for r in rows).encode()
    dataset = alice_api.post("/api/v1/datasets", {"file": SimpleUploadedFile("qa.jsonl", data)}).json()
    created = alice_api.post(
        "/api/v1/jobs",
        {
            "dataset": dataset["id"],
            "base_model": model.pk,
            "method": "lora",
            "task": "sft",
            "text_column": "task.question",
            "label_column": "answer",
            "template": "plain",
            "params": {"epochs": 1, "batch_size": 8, "max_length": 32},
        },
        content_type="application/json",
    )
    assert created.status_code == 201, created.content
    job_id = created.json()["id"]
    final = wait_for(
        lambda: (s := _status(alice_api, job_id))["status"] in ("succeeded", "failed", "cancelled") and s,
        timeout=240,
        what="the SFT job to finish",
    )
    assert final["status"] == "succeeded", final
    assert {"eval_loss", "perplexity", "rouge_l", "bleu", "exact_match"} <= set(final["metrics"])
    report = EvalReport.objects.get(job_id=job_id).data
    assert report["task"] == "sft" and report["lineage"]["template"] == "plain"
    assert len(report["samples"]) == report["eval_rows"] == 10  # a quarter of 40 rows: small data holds out more
    assert {s["reference"] for s in report["samples"]} <= {"red", "blue"}
    assert MetricPoint.objects.filter(job_id=job_id, name="eval_loss").exists()
    client = Client()
    client.force_login(Job.objects.get(pk=job_id).created_by)
    page = client.get(f"/jobs/{job_id}/").content.decode()
    assert 'id="samples"' in page and 'id="generation-metrics"' in page and "ROUGE-L" in page
    assert "accuracy" not in page.split('id="job-metrics"')[1].split("</div>")[0]
    board = client.get(f"/datasets/{dataset['id']}/").content.decode()
    assert 'id="generation-leaderboard"' in board and 'id="leaderboard"' not in board
