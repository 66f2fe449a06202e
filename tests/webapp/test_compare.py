"""Comparing jobs side by side and a dataset's leaderboard, through the page and the API, team scoped."""

import re

import pytest
from django.test import Client
from django.utils import timezone

from jobs.models import Artifact, EvalReport, Job, MetricPoint
from jobs.storage import blob_create_from_chunks
from tests.factories import SST2_COLUMNS, dataset_from, job_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def dataset(alice, sst2_sample):
    return dataset_from(alice, sst2_sample, **SST2_COLUMNS)


@pytest.fixture
def finished(alice, dataset, tiny_model):
    """Make a succeeded job with metrics, a report, loss points and an adapter."""

    def make(method="lora", accuracy=0.8, trainable=1000, method_params=None, params=None, losses=(0.7, 0.5)):
        job = job_for(alice, dataset, tiny_model, method=method, method_params=method_params, params=params)
        Job.objects.filter(pk=job.pk).update(
            status=Job.Status.SUCCEEDED,
            metrics={"accuracy": accuracy, "macro_f1": accuracy - 0.01},
            finished_at=timezone.now(),
            progress_step=len(losses),
            progress_total=len(losses),
        )
        EvalReport.objects.create(
            job=job, data={"trainable_params": trainable, "total_params": 100_000, "train_seconds": 12.5}
        )
        MetricPoint.objects.bulk_create(
            [MetricPoint(job=job, step=i + 1, name="loss", value=v) for i, v in enumerate(losses)]
        )
        blob = blob_create_from_chunks([b"x" * trainable])
        Artifact.objects.create(
            job=job, kind=Artifact.Kind.ADAPTER, filename="a.zip", blob=blob, size_bytes=blob.size, sha256=blob.sha256
        )
        return Job.objects.get(pk=job.pk)

    return make


def rows_by_name(body):
    return {row["name"]: row for row in body["rows"]}


def test_the_api_puts_jobs_side_by_side_and_marks_differences_and_winners(alice_api, finished):
    lora = finished("lora", 0.82, 74_000, {"r": 16})
    ia3 = finished("ia3", 0.80, 17_000)
    body = alice_api.get(f"/api/v1/jobs/compare?ids={lora.pk},{ia3.pk}").json()
    assert [job["id"] for job in body["jobs"]] == [lora.pk, ia3.pk]
    rows = rows_by_name(body)
    assert rows["accuracy"]["values"] == [0.82, 0.80] and rows["accuracy"]["best"] == [0]
    assert rows["trainable parameters"]["best"] == [1] and rows["adapter bytes"]["values"] == [74_000, 17_000]
    assert rows["method"]["differs"] and not rows["dataset"]["differs"] and not rows["epochs"]["differs"]
    assert rows["method: r"]["values"] == [16, None]  # IA3 has no rank
    assert set(body["curves"]) == {f"#{lora.pk} loss", f"#{ia3.pk} loss"}


def test_the_configuration_shows_the_values_the_runs_used_not_empty_defaults(alice_api, finished):
    chosen, typed = finished("lora"), finished("lora", params={"max_length": 64})
    # max length is chosen by the worker from the texts' token lengths, after submission
    assert chosen.params["max_length"] is None and chosen.params["precision"] == "auto"
    for job, length in ((chosen, 48), (typed, 64)):  # what each run's report says it trained with
        job.report.data["params"] = {**job.params, "max_length": length, "precision": "fp32"}
        job.report.save()
    rows = rows_by_name(alice_api.get(f"/api/v1/jobs/compare?ids={chosen.pk},{typed.pk}").json())
    assert rows["max_length"]["values"] == [48, 64] and rows["max_length"]["differs"]
    assert rows["precision"]["values"] == ["fp32", "fp32"] and not rows["precision"]["differs"]


def test_other_teams_jobs_are_left_out_and_bad_ids_refused(alice_api, bob_api, finished):
    job = finished()
    assert bob_api.get(f"/api/v1/jobs/compare?ids={job.pk}").json()["jobs"] == []
    assert alice_api.get("/api/v1/jobs/compare?ids=1,x").status_code == 400
    assert "at most 8" in alice_api.get("/api/v1/jobs/compare?ids=" + ",".join(map(str, range(1, 10)))).json()["detail"]


def test_the_leaderboard_ranks_succeeded_jobs_on_the_dataset(alice_api, bob_api, finished, dataset):
    low, high, mid = finished(accuracy=0.6), finished(accuracy=0.9), finished(accuracy=0.75)
    board = alice_api.get(f"/api/v1/datasets/{dataset.pk}/leaderboard").json()
    assert [job["id"] for job in board] == [high.pk, mid.pk, low.pk]
    assert bob_api.get(f"/api/v1/datasets/{dataset.pk}/leaderboard").status_code == 404


def test_the_compare_page_highlights_and_draws_the_curves(alice, finished, django_assert_max_num_queries):
    jobs = [finished("lora", 0.7 + i / 100, 1000 + i) for i in range(6)]
    client = Client()
    client.force_login(alice)
    ids = ",".join(str(job.pk) for job in jobs)
    client.get(f"/jobs/compare/?ids={ids}")  # warm the session and content types
    with django_assert_max_num_queries(20):  # one query per curve at most, not per row or value
        html = client.get(f"/jobs/compare/?ids={ids}").content.decode()
    assert html.count('data-series="#') == 6
    assert re.search(r'<tr class="differs" data-name="accuracy">', html)
    assert re.search(r'<tr class="" data-name="method">', html)
    assert html.count('class="num best"') >= 2  # best accuracy, macro-F1, fewest parameters...
    assert "Pick two or more jobs" in client.get("/jobs/compare/").content.decode()
    assert client.get("/jobs/compare/?ids=a").status_code == 400


def test_job_list_and_dataset_page_offer_the_comparison(alice, finished, dataset):
    first, second = finished(accuracy=0.7), finished(accuracy=0.9)
    client = Client()
    client.force_login(alice)
    assert f'name="ids" value="{first.pk}"' in client.get("/jobs/").content.decode()
    page = client.get(f"/datasets/{dataset.pk}/").content.decode()
    assert 'id="leaderboard"' in page and page.index(f"#{second.pk} ") < page.index(f"#{first.pk} ")
