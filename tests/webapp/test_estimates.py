"""The job form's estimate before submission (issue 20, item 1): steps, time and memory from the team's own
finished jobs when it has some (else a rough rule, said so), the queue, and a warning when no online worker has
the memory; its queries do not grow with the number of jobs."""

import json

import pytest
from django.db import connection
from django.template.defaultfilters import filesizeformat
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobs.models import EvalReport, Job, WorkerHeartbeat
from tests.factories import job_row

pytestmark = pytest.mark.django_db

QUERY = {
    "method": "lora",
    "task": "text-classification",
    "text_column": "sentence",
    "label_column": "label",
    "p_batch_size": "16",
    "p_epochs": "2",
    "p_max_length": "32",
}


def _form(alice, dataset, tiny_model, **more) -> str:
    client = Client()
    client.force_login(alice)
    query = {**QUERY, "dataset": dataset.pk, "base_model": tiny_model.pk, **more}
    return client.get("/jobs/new/defaults/", query).content.decode()


def _finished(dataset, tiny_model, *, tokens_per_second=100.0, peak=200e6, method="lora") -> Job:
    """A finished run of the form's own settings: 150 rows in 10 batches of 16 twice, 19.2 tokens a row, 50 rows
    evaluated after each epoch: 6,784 tokens of work (peftcore.estimates), done in 6,784 / tokens_per_second s."""
    job = job_row(dataset, tiny_model, status=Job.Status.SUCCEEDED, method=method)
    EvalReport.objects.create(
        job=job,
        data={
            "device": "cpu",
            "train_seconds": 6784 / tokens_per_second,
            "steps": 20,
            "train_rows": 150,
            "eval_rows": 50,
            "efficiency": {"train_tokens": 20 * 16 * 19.2, "peak_memory_bytes": peak},
            "params": {"batch_size": 16, "max_length": 32},
        },
    )
    return job


def test_without_finished_jobs_the_estimate_is_a_rough_rule_and_says_so(alice, dataset, tiny_model):
    html = _form(alice, dataset, tiny_model)
    # 200 rows: 50 held out, 150 to train on: 10 batches of 16, twice
    assert 'id="job-estimate"' in html and "<b>20</b> training steps at most" in html
    assert "a rough rule for this model" in html and "about " in html and "on a CPU worker" in html
    assert "No job waiting, 0 running" in html
    unknown = _form(alice, dataset, tiny_model, p_max_length="")
    assert "time not known yet" in unknown and "once the texts&#x27; token lengths are counted" in unknown


def test_the_teams_finished_jobs_calibrate_time_and_memory(alice, dataset, tiny_model, tiny_model_dir):
    job = _finished(dataset, tiny_model)
    _finished(dataset, tiny_model, tokens_per_second=5.0, method="ia3")  # another method: not used when lora has one
    html = _form(alice, dataset, tiny_model)
    # 20 steps x 16 rows x 19.2 tokens (60% of 32: lengths not counted) + 2 evaluations x 50 rows x 19.2 / 3
    # = 6,784 tokens at 100 tokens/s
    assert "about 1m 07s" in html and "from 1 finished lora job(s) of your team on this model (100 tokens/s)" in html
    assert f"from job #{job.pk}&#x27;s measured peak (batch 16, length 32)" in html and "190.7" in html
    # 4x the batch x length: the measured peak grows by the activations only (the rule's 20 values per token,
    # layer and hidden unit, 4 bytes each)
    config = json.loads((tiny_model_dir / "config.json").read_text())
    per_token = config["hidden_size"] * config["num_hidden_layers"] * 20 * 4
    grown = 200e6 + (32 * 64 - 16 * 32) * per_token
    doubled = _form(alice, dataset, tiny_model, p_batch_size="32", p_max_length="64")
    assert f"about {filesizeformat(int(grown))}".replace("\xa0", "&nbsp;") in doubled.replace("\xa0", "&nbsp;")


def test_a_job_no_online_worker_could_hold_is_warned_about(alice, dataset, tiny_model):
    _finished(dataset, tiny_model)
    WorkerHeartbeat.objects.create(
        hostname="training@small", info={"queues": ["training"], "memory": {"available_mb": 10}}, seen_at=timezone.now()
    )
    job_row(dataset, tiny_model)  # one queued ahead
    html = _form(alice, dataset, tiny_model)
    assert "the most any online worker has free is 10 MB" in html and "Lower the batch size" in html
    assert "<b>1</b> job already waiting" in html


def test_the_estimate_costs_the_same_queries_with_many_jobs(alice, dataset, tiny_model):
    _finished(dataset, tiny_model)
    with CaptureQueriesContext(connection) as few:
        _form(alice, dataset, tiny_model)
    for _ in range(30):
        _finished(dataset, tiny_model)
        job_row(dataset, tiny_model)
    with CaptureQueriesContext(connection) as many:
        _form(alice, dataset, tiny_model)
    assert len(many) == len(few)
