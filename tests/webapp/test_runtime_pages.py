"""The runtime on the pages and the API: queue positions, the attempts table, the resume button, priority and
time limit in the job form, another team's job refused."""

import pytest
from django.utils import timezone

from jobs import runtime
from jobs.models import Job, JobAttempt
from jobs.storage import blob_create_from_chunks
from tests.factories import job_for


@pytest.fixture
def make_job(alice, dataset, tiny_model):
    """make_job(**fields): a queued job of alice's on the SST-2 sample."""
    return lambda **fields: job_for(alice, dataset, tiny_model, **fields)


def test_queued_jobs_show_their_place_on_the_list_the_page_and_the_api(client, alice_api, make_job):
    first, second = make_job(), make_job(priority=Job.Priority.LOW)
    assert "next to start" in client.get(f"/jobs/{first.pk}/").content.decode()
    page = client.get(f"/jobs/{second.pk}/").content.decode()
    assert "#2 in the queue" in page and "low priority" in page
    assert "#2 in queue" in client.get("/jobs/").content.decode()
    assert alice_api.get(f"/api/v1/jobs/{second.pk}").json()["queue_position"] == 2
    listed = {job["id"]: job for job in alice_api.get("/api/v1/jobs").json()}
    assert (listed[first.pk]["queue_position"], listed[second.pk]["priority"]) == (1, "low")


def _cancelled_with_checkpoint(job: Job, step: int = 7) -> Job:
    claimed = runtime.job_claim(job_id=job.pk, owner="gpu-1/42")
    runtime.job_checkpoint(job=claimed, step=step, blob=blob_create_from_chunks([b"ckpt"]))
    runtime.job_cancel(job=claimed)
    runtime.job_fail(
        job=claimed,
        kind=Job.ErrorKind.CANCELLED,
        status=Job.Status.CANCELLED,
        message=f"cancelled by a user while running; resume it to go on from step {step}",
    )
    return Job.objects.get(pk=job.pk)


def test_a_cancelled_job_resumes_from_its_checkpoint_with_one_click(
    client, make_job, django_capture_on_commit_callbacks
):
    job = _cancelled_with_checkpoint(make_job())
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert "Resume from step 7" in page and 'id="attempts"' in page and "gpu-1/42" in page
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(f"/jobs/{job.pk}/resume/")
    assert response.status_code == 302 and len(callbacks) == 1  # queued and published once committed
    job.refresh_from_db()
    assert job.status == Job.Status.QUEUED and job.notice == "resumed by alice from step 7"
    assert "Resumed by alice from step 7" in client.get(f"/jobs/{job.pk}/").content.decode()


def test_the_api_resumes_lists_attempts_and_refuses_what_cannot_resume(alice_api, bob_api, make_job):
    job = _cancelled_with_checkpoint(make_job())
    assert bob_api.post(f"/api/v1/jobs/{job.pk}/resume").status_code == 404
    assert bob_api.get(f"/api/v1/jobs/{job.pk}/attempts").status_code == 404
    attempts = alice_api.get(f"/api/v1/jobs/{job.pk}/attempts").json()
    assert [(a["number"], a["worker"], a["outcome"]) for a in attempts] == [(1, "gpu-1/42", "cancelled")]
    resumed = alice_api.post(f"/api/v1/jobs/{job.pk}/resume").json()
    assert (resumed["status"], resumed["checkpoint_step"]) == ("queued", 7)
    again = alice_api.post(f"/api/v1/jobs/{job.pk}/resume")
    assert again.status_code == 409 and "only a failed or cancelled job" in again.json()["detail"]


def test_a_job_failed_on_its_data_offers_no_resume(client, make_job):
    job = make_job()
    Job.objects.filter(pk=job.pk).update(
        status=Job.Status.FAILED,
        error_kind=Job.ErrorKind.BAD_DATA,
        error_message="row 3 has no label",
        finished_at=timezone.now(),
    )
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert "row 3 has no label" in page and 'id="resume-form"' not in page
    response = client.post(f"/jobs/{job.pk}/resume/", follow=True)
    assert "would fail again" in response.content.decode()
    assert Job.objects.get(pk=job.pk).status == Job.Status.FAILED


def test_an_out_of_memory_retry_is_said_on_the_job_page(client, make_job):
    job = make_job()
    claimed = runtime.job_claim(job_id=job.pk, owner="gpu-1/42")
    runtime.job_requeue(
        job=claimed,
        outcome=JobAttempt.Outcome.OUT_OF_MEMORY,
        micro_batch_size=8,
        message="ran out of memory with a micro-batch of 16; retrying from the start (no checkpoint "
        "yet) with a micro-batch of 8 and 2 gradient accumulation steps",
    )
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert 'id="job-notice"' in page and "micro-batch of 8 and 2 gradient accumulation steps" in page
    assert "out of memory" in page  # the attempts table names how the first attempt ended


def test_priority_and_time_limit_come_from_the_form_and_the_api(
    client, alice_api, make_job, tiny_model, django_capture_on_commit_callbacks
):
    from tests.webapp.test_pages import job_form_data

    dataset_id = make_job().dataset_id
    data = job_form_data(client, dataset=dataset_id, base_model=tiny_model.pk, method="lora")
    data.update(priority=1, time_limit=90)
    with django_capture_on_commit_callbacks(execute=False):
        assert client.post("/jobs/new/", data).status_code == 302
    job = Job.objects.latest("pk")
    assert (job.priority, job.time_limit_seconds) == (Job.Priority.HIGH, 5400)
    data.update(time_limit=1)
    response = client.post("/jobs/new/", data)
    assert response.status_code == 400 and "time limit must be more than" in response.content.decode()
    bad = alice_api.post(
        "/api/v1/jobs",
        {
            "dataset": dataset_id,
            "base_model": tiny_model.pk,
            "method": "lora",
            "text_column": "sentence",
            "label_column": "label",
            "time_limit_minutes": 10**6,
        },
        content_type="application/json",
    )
    assert bad.status_code == 400 and "time_limit" in bad.json()["errors"]


def test_a_running_job_shows_when_its_worker_was_last_heard_from_and_its_checkpoint(client, alice_api, make_job):
    job = make_job()
    claimed = runtime.job_claim(job_id=job.pk, owner="gpu-1/42")
    runtime.job_checkpoint(job=claimed, step=12, blob=blob_create_from_chunks([b"ckpt"]))
    page = client.get(f"/jobs/{job.pk}/status/").content.decode()
    assert 'id="heartbeat"' in page and "checkpoint at step 12" in page
    assert alice_api.get(f"/api/v1/jobs/{job.pk}").json()["heartbeat_at"] is not None
