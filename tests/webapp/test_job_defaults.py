"""The settings a user leaves empty are chosen when the job is created, stored with their reasons and shown on
the form (before submission, with warnings for a run likely to learn nothing), the job page and compare."""

import json

import pytest
from django.test import Client

from jobs.models import EvalReport, Job, TokenStats
from tests.webapp.test_api import upload

pytestmark = pytest.mark.django_db


def submit(api, dataset, model, **more):
    body = {
        "dataset": dataset,
        "base_model": model.pk,
        "method": "lora",
        "text_column": "sentence",
        "label_column": "label",
        **more,
    }
    return api.post("/api/v1/jobs", json.dumps(body), content_type="application/json")


def test_empty_settings_are_chosen_at_creation_with_their_reasons(alice_api, sst2_sample, tiny_model):
    dataset = upload(alice_api, sst2_sample, name="s.tsv", text_column="sentence", label_column="label").json()
    response = submit(alice_api, dataset["id"], tiny_model)
    assert response.status_code == 201, response.content
    job = Job.objects.get(pk=response.json()["id"])
    # 200 rows: 50 held out (a quarter, as the data is small), 150 to train on
    assert job.params["batch_size"] == 16 and job.params["epochs"] == 30  # ceil(300 / 10 steps)
    assert job.params["learning_rate"] == 1e-3 and job.params["head_learning_rate"] == 1e-2
    assert job.method_params["lora_alpha"] == 2 * job.method_params["r"]
    assert job.method_params["placement"] == "both"
    assert "150 training rows" in job.choices["params.batch_size"]
    assert "50 of 200 rows held out" in job.choices["params.eval_fraction"]
    assert job.params["max_length"] is None and "params.max_length" not in job.choices  # tokens not counted yet
    shown = alice_api.get(f"/api/v1/jobs/{job.pk}").json()
    assert shown["choices"] == job.choices and shown["params"]["epochs"] == 30


def test_what_the_user_typed_is_kept_and_max_length_comes_from_counted_tokens(alice_api, sst2_sample, tiny_model):
    dataset = upload(alice_api, sst2_sample, name="s.tsv", text_column="sentence", label_column="label").json()
    TokenStats.objects.create(
        dataset_id=dataset["id"], base_model=tiny_model, column="sentence", result={"histogram": {"10": 95, "90": 5}}
    )
    response = submit(
        alice_api, dataset["id"], tiny_model, params={"epochs": 2, "batch_size": 8}, method_params={"lora_alpha": 5}
    )
    job = Job.objects.get(pk=response.json()["id"])
    assert (job.params["epochs"], job.params["batch_size"], job.method_params["lora_alpha"]) == (2, 8, 5)
    assert "params.epochs" not in job.choices and "method_params.lora_alpha" not in job.choices
    assert job.params["max_length"] == 16 and "95% of the texts are 10 tokens" in job.choices["params.max_length"]


def test_the_form_shows_what_it_will_choose_and_warns_before_a_run_likely_to_learn_nothing(
    alice, alice_api, tiny_model
):
    rows = "sentence\tlabel\n" + "".join(f"text number {i}\t{'a' if i % 10 else 'b'}\n" for i in range(40))
    dataset = upload(alice_api, rows.encode(), name="tiny.tsv", text_column="sentence", label_column="label").json()
    client = Client()
    client.force_login(alice)
    query = {
        "dataset": dataset["id"],
        "base_model": tiny_model.pk,
        "method": "lora",
        "task": "text-classification",
        "text_column": "sentence",
        "label_column": "label",
    }
    html = client.get("/jobs/new/defaults/", query).content.decode()
    assert "Chosen for you" in html and 'data-name="params.epochs"' in html and "because a budget of about 300" in html
    assert (
        'id="job-warnings"' in html
        and "Only 30 rows to train on" in html
        and "Few examples of &#x27;b&#x27; (4)" in html
    )
    html = client.get("/jobs/new/defaults/", {**query, "p_epochs": "1", "p_batch_size": "64"}).content.decode()
    assert "Only 1 learning steps" in html and 'data-name="params.epochs"' not in html
    html = client.get("/jobs/new/defaults/", {**query, "method": "prompt_tuning"}).content.decode()
    assert "learns slowly from little data" in html
    slow = {**query, "p_learning_rate": "5e-5"}  # far below LoRA's 1e-3, not below a CorDA start's 1e-4
    assert "far below the 0.001 measured best for LoRA" in client.get("/jobs/new/defaults/", slow).content.decode()
    assert "far below" not in client.get("/jobs/new/defaults/", {**slow, "m_init": "corda"}).content.decode()
    bad = client.get("/jobs/new/defaults/", {**query, "p_epochs": "-3"})
    assert "Fix the settings" in bad.content.decode()
    assert client.get("/jobs/new/defaults/", {**query, "dataset": "999999"}).status_code == 400
    form = client.get("/jobs/new/", {"dataset": dataset["id"]}).content.decode()
    assert 'id="job-defaults"' in form


def test_the_job_page_and_compare_show_the_choices_the_interval_and_the_warnings(
    alice, alice_api, sst2_sample, tiny_model
):
    dataset = upload(alice_api, sst2_sample, name="s.tsv", text_column="sentence", label_column="label").json()
    jobs = [Job.objects.get(pk=submit(alice_api, dataset["id"], tiny_model).json()["id"]) for _ in range(2)]
    client = Client()
    client.force_login(alice)
    html = client.get(f"/jobs/{jobs[0].pk}/").content.decode()
    assert (
        'id="choices"' in html and 'data-key="params.batch_size"' in html and "chosen because 150 training rows" in html
    )
    report = {
        "labels": ["0", "1"],
        "metrics": {"accuracy": 0.633},
        "intervals": {"accuracy": [0.577, 0.686]},
        "confusion_matrix": [[0, 110], [0, 190]],
        "warnings": [
            {"kind": "one_class", "message": "The model predicts '1' for every row.", "fix": "give it more rows"}
        ],
        "best": {"epoch": 2, "step": 20},
        "stopped_early": True,
        "steps": 50,
        "total_steps": 300,
        "choices": {"params.epochs": "a budget of about 300 steps", "pooling": "the checkpoint averages its tokens"},
        "params": {"epochs": 30},
        "lineage": {"pooling": "mean"},
        "eval_rows": 300,
    }
    for job in jobs:
        EvalReport.objects.create(job=job, data=report)
    Job.objects.filter(pk__in=[j.pk for j in jobs]).update(status=Job.Status.SUCCEEDED, metrics={"accuracy": 0.633})
    html = client.get(f"/jobs/{jobs[0].pk}/").content.decode()
    assert 'id="accuracy-interval"' in html and "57.7%–68.6%" in html
    assert 'id="report-warnings"' in html and "for every row" in html and "Give it more rows" in html
    assert 'id="best-epoch"' in html and "stopped early at step 50 of 300" in html
    assert "Pooling" in html and "mean" in html and "the checkpoint averages its tokens" in html
    html = client.get("/jobs/compare/", {"ids": f"{jobs[0].pk},{jobs[1].pk}"}).content.decode()
    assert html.count('class="muted interval"') == 2 and "57.7%–68.6%" in html
