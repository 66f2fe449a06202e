"""The playground writes with another adapter of the team beside the job's own (an SFT adapter next to the DPO
one trained on top of it): the menu offers the team's succeeded generation jobs on the same base model with the
job's start preselected, the worker answers with both adapters, and any other job is refused naming the field.
Real tiny Gemma 3 LoRA adapters; the worker's function runs in-process."""

import re

import pytest
from django.conf import settings
from django.test import Client

from jobs import playground
from jobs.models import Job, PlaygroundRun
from peftcore.predict import load_predictor, predict
from tests.factories import dataset_from, job_row, sft_sibling
from tests.tiny_models import store_adapter, train_tiny_lora_sft

pytestmark = pytest.mark.django_db

TEXTS = ["the film was lovely and superb", "the film was dull and tedious"]


@pytest.fixture(scope="module")
def longer_adapter(tiny_gemma_sft, tmp_path_factory):
    """A second LoRA SFT adapter on the same tiny Gemma 3, trained longer, so it writes differently."""
    pairs, _ = tiny_gemma_sft
    model = settings.MODEL_ROOT / "tiny-gemma3"
    return train_tiny_lora_sft(model, pairs, tmp_path_factory.mktemp("longer"), epochs=4, batch_size=8)


@pytest.fixture
def later_job(sft_job, longer_adapter):
    """A succeeded job started from sft_job, with the longer-trained adapter."""
    job = sft_sibling(
        sft_job,
        start_from=sft_job,
        name="after sft",
    )
    store_adapter(job, longer_adapter)
    playground.forget_loaded()
    return job


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_menu_offers_the_teams_generation_adapters_on_the_same_model_with_the_start_preselected(
    alice, bob, sft_job, later_job, tiny_model, dataset, tiny_gemma_sft
):
    classifier = job_row(dataset, tiny_model, status=Job.Status.SUCCEEDED)  # another model and task: not offered
    failed = job_row(sft_job.dataset, sft_job.base_model, status=Job.Status.FAILED, task="sft")
    theirs = job_row(dataset_from(bob, tiny_gemma_sft[0], name="b"), sft_job.base_model, status="succeeded", task="sft")
    html = _client(alice).get(f"/jobs/{later_job.pk}/").content.decode()
    menu = re.search(r'<select name="compare_job".*?</select>', html, re.DOTALL).group(0)
    offered = [int(n) for n in re.findall(r'<option value="(\d+)"', menu)]
    assert offered == [sft_job.pk]
    assert re.search(rf'<option value="{sft_job.pk}" selected>', menu) and "this job started from it" in menu
    assert {classifier.pk, failed.pk, theirs.pk, later_job.pk}.isdisjoint(offered)
    classifier_page = _client(alice).get(f"/jobs/{classifier.pk}/").content.decode()
    assert 'name="compare_job"' not in classifier_page


def test_any_other_job_is_refused_naming_the_field(
    alice_api, bob, sft_job, later_job, tiny_model, dataset, tiny_gemma_sft
):
    classifier = job_row(dataset, tiny_model, status=Job.Status.SUCCEEDED)
    theirs = job_row(dataset_from(bob, tiny_gemma_sft[0], name="b"), sft_job.base_model, status="succeeded", task="sft")
    url = f"/api/v1/jobs/{later_job.pk}/playground"
    for other, said in (
        (later_job.pk, "not this job's own"),
        (classifier.pk, "is not one of this team's succeeded generation jobs on tiny Gemma 3"),
        (theirs.pk, "is not one of this team's succeeded generation jobs"),  # another team's reads as missing
        (10**9, "is not one of this team's succeeded generation jobs"),
    ):
        refused = alice_api.post(url, {"texts": ["hi"], "compare_job": other}, content_type="application/json")
        assert refused.status_code == 400 and said in refused.json()["errors"]["compare_job"], other
    refused = alice_api.post(
        f"/api/v1/jobs/{classifier.pk}/playground",
        {"texts": ["hi"], "compare_job": later_job.pk},
        content_type="application/json",
    )
    assert refused.status_code == 400 and "predicts labels" in refused.json()["errors"]["compare_job"]
    page = _client(later_job.created_by).post(f"/jobs/{later_job.pk}/playground/", {"texts": "hi", "compare_job": "x"})
    assert page.status_code == 400 and "must be a job number" in page.content.decode()
    assert not PlaygroundRun.objects.exists()


def test_the_worker_writes_with_both_adapters_and_the_page_shows_them_side_by_side(
    alice_api, sft_job, later_job, tiny_gemma_sft, longer_adapter, django_capture_on_commit_callbacks
):
    model = settings.MODEL_ROOT / "tiny-gemma3"
    mine = predict(load_predictor(model, longer_adapter), TEXTS, max_length=128, max_new_tokens=8)
    first = predict(load_predictor(model, tiny_gemma_sft[1]), TEXTS, max_length=128, max_new_tokens=8)
    assert mine != first  # two adapters that write differently: the columns cannot be confused unnoticed

    with django_capture_on_commit_callbacks(execute=False):
        created = alice_api.post(
            f"/api/v1/jobs/{later_job.pk}/playground",
            {"texts": TEXTS, "max_new_tokens": 8, "compare_job": sft_job.pk},
            content_type="application/json",
        )
    assert created.status_code == 202
    run = PlaygroundRun.objects.get()
    assert run.options["compare_job"] == sft_job.pk and run.options["compare_name"] == f"#{sft_job.pk} lora"
    assert playground.predict(run.pk) == "predicted"
    body = alice_api.get(f"/api/v1/jobs/{later_job.pk}/playground/{run.pk}").json()
    assert [g["generation"] for g in body["generations"]] == [g["generation"] for g in mine]
    assert [g["compare_generation"] for g in body["generations"]] == [g["generation"] for g in first]
    assert body["compare_name"] == f"#{sft_job.pk} lora"

    html = _client(later_job.created_by).get(f"/jobs/{later_job.pk}/playground/{run.pk}/").content.decode()
    assert f"Job #{sft_job.pk} lora's response" in html
    assert html.count('class="compare-generated"') == 2 and html.count('class="generated"') == 2


def test_the_base_model_column_is_refused_for_an_adapter_on_a_cut_base(alice_api, sft_job):
    from jobs.models import EvalReport

    url = f"/api/v1/jobs/{sft_job.pk}/playground"
    EvalReport.objects.update_or_create(job=sft_job, defaults={"data": {"task": "sft"}})
    with_base = {"texts": ["hi"], "compare_base": True}
    assert alice_api.post(url, with_base, content_type="application/json").status_code == 202
    EvalReport.objects.filter(job=sft_job).update(data={"task": "sft", "base_pruning": {"at_step": 2}})
    refused = alice_api.post(url, with_base, content_type="application/json")
    assert refused.status_code == 400 and "untick the comparison" in refused.json()["errors"]["compare_base"]
    assert alice_api.post(url, {"texts": ["hi"]}, content_type="application/json").status_code == 202
