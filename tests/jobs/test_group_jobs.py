"""One adapter per group as a job (issue 21): submitted with a group column, run by the runner with a real
training child, stored as one archive with its index file, shown on the job page as a table of groups; the
refusals come back per field."""

import io
import json
import zipfile

import pytest
from django.test import Client, TestCase

from jobs import runner, services
from jobs.errors import ValidationFailed
from jobs.models import Artifact, Job
from jobs.storage import blob_iter_chunks
from tests.factories import dataset_from, job_for

ROWS = (
    "text,label,user\n"
    + "".join(
        f"sick film {i},pos,ann\ndull film {i},neg,ann\nsick film {i},neg,bo\ngreat film {i},pos,bo\n"
        for i in range(12)
    )
    + "".join(f"odd film {i},pos,cy\n" for i in range(3))
)


@pytest.fixture
def grouped(alice, tmp_path):
    path = tmp_path / "grouped.csv"
    path.write_text(ROWS)
    return dataset_from(alice, path, name="grouped")


def _job(alice, data, model, **more):
    with TestCase.captureOnCommitCallbacks(execute=False):
        return job_for(alice, data, model, text_column="text", params={"epochs": 1}, **more)


def test_a_group_run_trains_one_adapter_per_group_and_shows_the_table(alice, grouped, tiny_model, tiny_model_dir):
    job = _job(alice, grouped, tiny_model, group_column="user", group_shared=True)
    assert runner.run(job.pk) == "succeeded"
    job.refresh_from_db()
    report = job.report.data
    assert [g["group"] for g in report["groups"]] == ["ann", "bo"] and report["too_small"][0]["group"] == "cy"
    assert "accuracy" in job.metrics and report["shared"] is not None
    archive = b"".join(blob_iter_chunks(job.artifacts.get(kind=Artifact.Kind.ADAPTER).blob))
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        index = json.loads(zf.read("index.json"))
        names = set(zf.namelist())
    assert set(index["groups"]) == {"ann", "bo"} and index["shared"] == "shared"
    assert all(f"{folder}/adapter_config.json" in names for folder in [*index["groups"].values(), "shared"])

    client = Client()
    client.force_login(alice)
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    table = page.split('id="groups-table"')[1].split("</table>")[0]
    assert 'data-group="ann"' in table and 'data-group="bo"' in table and " pts" in table
    assert "“cy” (3 rows: fewer than 20 rows)" in page and 'id="playground"' not in page
    # a group run's adapters are not one adapter: no playground, no start-from
    with pytest.raises(ValidationFailed, match="one adapter per group"):
        services.playground_run_create(job=job, user=alice, texts=["a film"])
    with pytest.raises(ValidationFailed) as caught:
        _job(alice, grouped, tiny_model, start_from=job)
    assert "one adapter per group" in caught.value.errors["start_from"]


def test_a_group_column_must_be_another_column_of_the_data(alice, grouped, tiny_model):
    for column, words in (("customer", "has no column 'customer'"), ("text", "what the adapter reads")):
        with pytest.raises(ValidationFailed) as caught:
            _job(alice, grouped, tiny_model, group_column=column)
        assert words in caught.value.errors["group_column"]
    assert not Job.objects.exists()


def test_the_form_and_the_api_submit_a_group_run(alice, alice_api, grouped, tiny_model):
    response = alice_api.post(
        "/api/v1/jobs",
        {
            "dataset": grouped.pk,
            "base_model": tiny_model.pk,
            "method": "lora",
            "text_column": "text",
            "label_column": "label",
            "group_column": "user",
            "group_shared": True,
        },
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["group_column"] == "user" and response.json()["group_shared"] is True
    client = Client()
    client.force_login(alice)
    form = client.get(f"/jobs/new/?dataset={grouped.pk}").content.decode()
    assert '<option value="user">user</option>' in form and 'id="per-group"' in form


def test_poly_with_a_group_column_trains_one_adapter_with_a_task_per_group(alice, alice_api, grouped, tiny_model):
    """A task per group (peftcore/task_routing.py): one adapter and its tasks.json in the archive, the table of
    groups under its own heading, and a playground that answers as the group picked."""
    from jobs import playground
    from jobs.models import PlaygroundRun

    job = _job(alice, grouped, tiny_model, method="poly", group_column="user")
    assert runner.run(job.pk) == "succeeded"
    job.refresh_from_db()
    report = job.report.data
    assert report["task_per_group"] and [g["group"] for g in report["groups"]] == ["ann", "bo", "cy"]
    archive = b"".join(blob_iter_chunks(job.artifacts.get(kind=Artifact.Kind.ADAPTER).blob))
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        assert json.loads(zf.read("tasks.json"))["tasks"] == {"ann": 0, "bo": 1, "cy": 2}
        assert "adapter_config.json" in zf.namelist() and "index.json" not in zf.namelist()

    client = Client()
    client.force_login(alice)
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert "One adapter, a task per user" in page and 'id="playground"' in page
    assert '<select id="id_group" name="group"><option value="ann">ann</option>' in page
    with pytest.raises(ValidationFailed, match="pick the user whose task answers: one of ann, bo, cy"):
        services.playground_run_create(job=job, user=alice, texts=["a film"])
    url = f"/api/v1/jobs/{job.pk}/playground"
    refused = alice_api.post(url, {"texts": ["a film"], "group": "dee"}, content_type="application/json")
    assert refused.status_code == 400 and "one of ann, bo, cy" in refused.json()["errors"]["group"]
    assert alice_api.get(f"/api/v1/jobs/{job.pk}").json()["task_per_group"] is True
    answers = {}
    for group in ("ann", "bo"):
        with TestCase.captureOnCommitCallbacks(execute=False):
            response = client.post(f"/jobs/{job.pk}/playground/", {"texts": "sick film 3", "group": group})
        assert response.status_code == 200, response.content
        run = PlaygroundRun.objects.filter(job=job).order_by("-pk").first()
        assert run.options["group"] == group
        assert playground.predict(run.pk) == "predicted"
        run.refresh_from_db()
        answers[group] = run.result["predictions"][0]["probabilities"]
    assert answers["ann"] != answers["bo"]  # each group's own task answered
    # its adapter has a task per group: not one to train on, and the page offers no "train on"
    assert 'id="train-on"' not in page
    with pytest.raises(ValidationFailed) as caught:
        _job(alice, grouped, tiny_model, start_from=job)
    assert "has a task per group" in caught.value.errors["start_from"]


def test_a_task_per_group_refuses_a_shared_adapter_and_an_evaluation_set_without_groups(
    alice, grouped, tiny_model, tmp_path
):
    with pytest.raises(ValidationFailed) as caught:
        _job(alice, grouped, tiny_model, method="poly", group_column="user", group_shared=True)
    assert "turn off the shared adapter" in caught.value.errors["group_shared"]
    path = tmp_path / "eval.csv"
    path.write_text("text,label\nsick film,pos\ndull film,neg\n")
    plain = dataset_from(alice, path, name="no groups")
    with pytest.raises(ValidationFailed) as caught:
        _job(alice, grouped, tiny_model, method="poly", group_column="user", eval_dataset=plain)
    assert "no groups has no column 'user'" in caught.value.errors["eval_dataset"]
    assert not Job.objects.exists()
