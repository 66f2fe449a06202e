"""The job page shows DEFT's activation density (peftcore/density.py), GaLore's optimiser state and what Light-PEFT
pruned (adapter ranks, base heads and channels) beside the other efficiency figures, and refuses by field a job that
cannot prune its base."""

import json

import pytest
from django.test import Client

from jobs.models import EvalReport, Job
from tests.webapp.test_api import upload
from tests.webapp.test_job_defaults import submit

pytestmark = pytest.mark.django_db


def _finished_job(alice, alice_api, sst2_sample, tiny_model):
    """(alice's succeeded job with a minimal report, that report, a client logged in as alice)."""
    dataset = upload(alice_api, sst2_sample, name="s.tsv", text_column="sentence", label_column="label").json()
    job = Job.objects.get(pk=submit(alice_api, dataset["id"], tiny_model).json()["id"])
    efficiency = {"trainable_share": 0.01, "adapter_bytes": 1000, "peak_memory_bytes": 10**8, "tokens_per_second": 9}
    report = {"labels": ["0", "1"], "metrics": {"accuracy": 0.8}, "efficiency": efficiency, "params": {}}
    EvalReport.objects.create(job=job, data=report)
    Job.objects.filter(pk=job.pk).update(status=Job.Status.SUCCEEDED, metrics={"accuracy": 0.8})
    client = Client()
    client.force_login(alice)
    return job, report, client


def test_the_efficiency_table_shows_the_share_of_firing_units_before_and_after(
    alice, alice_api, sst2_sample, tiny_model
):
    job, report, client = _finished_job(alice, alice_api, sst2_sample, tiny_model)
    assert 'id="activation-density"' not in client.get(f"/jobs/{job.pk}/").content.decode()

    report["activation_density"] = {"before": 0.4213, "after": 0.1875, "loss_weight": 0.5, "layers": 6}
    EvalReport.objects.filter(job=job).update(data=report)
    html = client.get(f"/jobs/{job.pk}/").content.decode()
    row = html[html.index('id="activation-density"') :].split("</tr>")[0]
    assert "density loss 0.5" in row and "42.1% before" in row and "18.8% after" in row


def test_the_efficiency_table_shows_galores_state_and_what_pruning_cut(alice, alice_api, sst2_sample, tiny_model):
    job, report, client = _finished_job(alice, alice_api, sst2_sample, tiny_model)
    html = client.get(f"/jobs/{job.pk}/").content.decode()
    assert 'id="pruning"' not in html and 'id="optimizer-state"' not in html  # reports from before either

    report["efficiency"]["optimizer_state_bytes"] = 3 * 1024 * 1024
    report["params"] = {"optimizer": "galore", "galore_rank": 8}
    report["pruning"] = {
        "at_step": 13,
        "ranks_before": 288,
        "ranks_after": 144,
        "trainable_before": 332546,
        "trainable_after": 166658,
        "seconds_per_step_before": 0.32,
        "seconds_per_step_after": 0.24,
        "step_time_saved": 0.25,
    }
    EvalReport.objects.filter(job=job).update(data=report)
    html = client.get(f"/jobs/{job.pk}/").content.decode()
    state = html[html.index('id="optimizer-state"') :].split("</tr>")[0]
    assert "GaLore, rank 8" in state and "3.0\xa0MB" in state
    pruned = html[html.index('id="pruning"') :].split("</tr>")[0]
    assert "after step 13" in pruned and "288 → 144 ranks" in pruned and "332,546 → 166,658 trainable" in pruned
    assert "0.320 → 0.240 s a step (25" in pruned


def test_the_efficiency_table_shows_what_base_pruning_cut(alice, alice_api, sst2_sample, tiny_model):
    job, report, client = _finished_job(alice, alice_api, sst2_sample, tiny_model)
    assert 'id="base-pruning"' not in client.get(f"/jobs/{job.pk}/").content.decode()

    report["base_pruning"] = {
        "at_step": 9,
        "before": {"heads": 72, "channels": 9216},
        "after": {"heads": 36, "channels": 4608},
        "total_before": 22713602,
        "total_after": 17400000,
        "seconds_per_step_before": 0.4,
        "seconds_per_step_after": 0.3,
        "step_time_saved": 0.25,
    }
    EvalReport.objects.filter(job=job).update(data=report)
    html = client.get(f"/jobs/{job.pk}/").content.decode()
    row = html[html.index('id="base-pruning"') :].split("</tr>")[0]
    assert "after step 9" in row and "72 → 36 attention heads" in row and "9,216 → 4,608 feed-forward" in row
    assert "22,713,602 → 17,400,000 weights" in row and "0.400 → 0.300 s a step (25" in row


@pytest.mark.parametrize(
    "more, field, said",
    [
        ({"method": "ia3"}, "params.prune_heads", "works with LoRA"),
        ({"method_params": {"use_dora": True}}, "params.prune_heads", "does not work with DoRA"),
        ({"group_column": "label"}, "params.prune_heads", "set both shares to 0 for a job with a group column"),
    ],
)
def test_a_job_that_cannot_prune_its_base_is_refused_by_field(alice_api, sst2_sample, tiny_model, more, field, said):
    dataset = upload(alice_api, sst2_sample, name="s.tsv", text_column="sentence", label_column="label").json()
    response = submit(alice_api, dataset["id"], tiny_model, params={"prune_heads": 0.5}, **more)
    assert response.status_code == 400, response.content
    assert said in json.dumps(response.json()["errors"][field], ensure_ascii=False)
    assert not Job.objects.exists()
