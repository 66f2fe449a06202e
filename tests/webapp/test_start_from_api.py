"""Starting a job from a finished job's adapter, as the API validates it (training itself: tests/integration and
tests/peftcore/test_start_from.py)."""

import pytest

from jobs.models import EvalReport, Job
from tests.webapp.test_api import upload

pytestmark = pytest.mark.django_db


def _job(api, dataset, model, method="lora", **extra):
    return api.post(
        "/api/v1/jobs",
        {
            "dataset": dataset,
            "base_model": model.pk,
            "method": method,
            "text_column": "sentence",
            "label_column": "label",
            **extra,
        },
        content_type="application/json",
    )


@pytest.fixture
def finished(alice_api, sst2_sample, tiny_model, django_capture_on_commit_callbacks):
    """(dataset id, a succeeded LoRA job of alice's team with r=4)"""
    dataset = upload(alice_api, sst2_sample, name="sst2.tsv", text_column="sentence", label_column="label").json()["id"]
    with django_capture_on_commit_callbacks(execute=False):
        job_id = _job(alice_api, dataset, tiny_model, method_params={"r": 4}).json()["id"]
    Job.objects.filter(pk=job_id).update(status=Job.Status.SUCCEEDED)
    EvalReport.objects.create(job_id=job_id, data={"labels": ["0", "1"]})
    return dataset, job_id


def test_continue_keeps_the_adapters_method_parameters(
    alice_api, tiny_model, finished, django_capture_on_commit_callbacks
):
    dataset, first = finished
    with django_capture_on_commit_callbacks(execute=False):
        response = _job(
            alice_api, dataset, tiny_model, start_from=first, start_mode="continue", method_params={"r": 16}
        )
    assert response.status_code == 201, response.content
    job = response.json()
    assert job["start_from"] == first and job["start_mode"] == "continue" and job["method_params"]["r"] == 4


@pytest.mark.parametrize(
    "method, mode, field, message",
    [
        ("ia3", "continue", "method", "continue training keeps the adapter's method (lora)"),
        ("full", "stack", "method", "cannot be stacked on an adapter"),
        ("ia3", "sideways", "start_mode", "Input should be 'continue' or 'stack'"),
    ],
)
def test_starts_that_cannot_work_are_refused_with_the_field_to_fix(
    alice_api, tiny_model, finished, method, mode, field, message
):
    dataset, first = finished
    response = _job(alice_api, dataset, tiny_model, method=method, start_from=first, start_mode=mode)
    assert response.status_code in (400, 422)
    assert message in response.content.decode()
    if response.status_code == 400:
        assert set(response.json()["errors"]) == {field}


def test_a_job_that_has_not_succeeded_has_no_adapter_to_start_from(alice_api, tiny_model, finished):
    dataset, first = finished
    Job.objects.filter(pk=first).update(status=Job.Status.FAILED)
    response = _job(alice_api, dataset, tiny_model, start_from=first)
    assert response.status_code == 400 and "has not succeeded" in response.json()["errors"]["start_from"]


def test_labels_the_adapter_does_not_know_are_refused(alice_api, tiny_model, finished):
    dataset, first = finished
    EvalReport.objects.filter(job_id=first).update(data={"labels": ["neg", "pos"]})
    response = _job(alice_api, dataset, tiny_model, start_from=first)
    assert response.status_code == 400 and "knows the labels neg, pos" in response.json()["errors"]["start_from"]


def test_another_teams_job_is_not_found(bob_api, tiny_model, finished, sst2_sample):
    _, first = finished
    dataset = upload(bob_api, sst2_sample, name="bob.tsv").json()["id"]
    response = _job(bob_api, dataset, tiny_model, start_from=first)
    assert response.status_code == 400 and response.json()["errors"] == {"start_from": "not found"}
