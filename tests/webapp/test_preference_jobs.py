"""Preference (DPO) jobs through the API and the job form: the third column (the rejected answer) is named by
its role, required, checked against the dataset and carried into the training spec; a method without a peft
adapter is refused for the task."""

import pytest
from django.test import Client

from jobs.models import Job
from jobs.workspace import build_spec
from tests.tiny_models import make_preference_file
from tests.webapp.test_api import upload

pytestmark = pytest.mark.django_db


@pytest.fixture
def pairs(alice_api, tmp_path):
    return upload(alice_api, make_preference_file(tmp_path / "pairs.jsonl", rows=24), name="pairs.jsonl").json()


def _submit(api, **fields):
    body = {"method": "lora", "task": "preference", "text_column": "review", "label_column": "chosen", **fields}
    return api.post("/api/v1/jobs", body, content_type="application/json")


def test_a_preference_job_carries_its_three_columns_into_the_spec(
    alice_api,
    pairs,
    tiny_llama,
    django_capture_on_commit_callbacks,
    tmp_path,
):
    with django_capture_on_commit_callbacks(execute=False):
        created = _submit(alice_api, dataset=pairs["id"], base_model=tiny_llama.pk, input_column="rejected")
    assert created.status_code == 201, created.json()
    spec = build_spec(Job.objects.get(pk=created.json()["id"]), tmp_path, tmp_path)
    assert (spec["task"], spec["text_column"], spec["label_column"], spec["input_column"]) == (
        "preference",
        "review",
        "chosen",
        "rejected",
    )


def test_the_rejected_column_is_required_checked_and_distinct(alice_api, pairs, tiny_llama):
    missing = _submit(alice_api, dataset=pairs["id"], base_model=tiny_llama.pk)
    assert missing.status_code == 400 and "rejected response" in str(missing.json()).lower()
    absent = _submit(alice_api, dataset=pairs["id"], base_model=tiny_llama.pk, input_column="nope")
    assert absent.status_code == 400 and "nope" in str(absent.json())
    same = _submit(alice_api, dataset=pairs["id"], base_model=tiny_llama.pk, input_column="chosen")
    assert same.status_code == 400 and "must differ" in str(same.json())
    red = _submit(alice_api, dataset=pairs["id"], base_model=tiny_llama.pk, input_column="rejected", method="red")
    assert red.status_code == 400 and "preference" in str(red.json())
    assert not Job.objects.exists()


def test_the_form_names_the_third_column_by_its_role(alice, pairs, tiny_llama):
    client = Client()
    client.force_login(alice)
    html = client.get("/jobs/new/", {"dataset": pairs["id"], "task": "preference"}).content.decode()
    assert "Rejected response column" in html and "The answer the model learns to prefer less." in html
    assert "Chosen response column" in html and '<option value="rejected" selected>' in html


def test_the_job_page_shows_the_pairs_ranked_right_before_and_after(alice, alice_api, pairs, tiny_llama):
    from jobs.models import EvalReport

    created = _submit(alice_api, dataset=pairs["id"], base_model=tiny_llama.pk, input_column="rejected")
    job = Job.objects.get(pk=created.json()["id"])
    metrics = {"eval_loss": 0.29, "reward_accuracy": 0.9375, "reward_margin": 1.09, "rouge_l": 0.5}
    baseline = {"eval_loss": 0.69, "reward_accuracy": 0.0, "reward_margin": 0.0, "rouge_l": 0.1}
    report = {"task": "preference", "metrics": metrics, "baseline_metrics": baseline, "eval_rows": 16}
    EvalReport.objects.create(job=job, data=report)
    Job.objects.filter(pk=job.pk).update(status=Job.Status.SUCCEEDED, metrics=metrics)
    client = Client()
    client.force_login(alice)
    html = client.get(f"/jobs/{job.pk}/").content.decode()
    assert 'id="reward-accuracy"' in html and "93.8%" in html
    row = html[html.index('data-metric="reward_accuracy"') :].split("</tr>")[0]
    assert "93.8%" in row and "0.0%" in row and "▲ better" in row
    html = client.get("/jobs/compare/", {"ids": f"{job.pk},{job.pk}"}).content.decode()
    assert "pairs ranked right" in html


def test_the_token_count_reads_prompt_and_chosen_not_the_rejected_answer_as_extra_input():
    from jobs.services.counts import sft_options
    from peftcore.tasks import get_task

    preference = sft_options("review", "chosen", "rejected", task=get_task("preference"))
    assert (preference["prompt"], preference["response"], preference["input"]) == ("review", "chosen", None)
    assert sft_options("instruction", "output", "input", task=get_task("sft"))["input"] == "input"


def test_dpo_refuses_pruning_the_base_on_the_form_and_orpo_takes_it(
    alice_api, pairs, tiny_llama, django_capture_on_commit_callbacks
):
    fields = {"dataset": pairs["id"], "base_model": tiny_llama.pk, "input_column": "rejected"}
    dpo = _submit(alice_api, **fields, params={"prune_channels": 0.5})
    assert dpo.status_code == 400
    assert "would change DPO's reference" in dpo.json()["errors"]["params.prune_heads"]
    with django_capture_on_commit_callbacks(execute=False):
        orpo = _submit(alice_api, **fields, params={"prune_channels": 0.5, "preference_loss": "orpo"})
    assert orpo.status_code == 201, orpo.json()
