"""job_reap_expired_leases: a running job whose worker stopped renewing its lease is requeued, failed or cancelled."""

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs import runtime
from jobs.models import Job
from tests.factories import dataset_from, job_for


@pytest.fixture
def running_job(alice, sst2_sample, tiny_model):
    job = job_for(alice, dataset_from(alice, sst2_sample), tiny_model)
    return runtime.job_claim(job_id=job.pk, owner="worker-1")


def expire(job, **fields):
    Job.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1), **fields)


def reap(capture, max_failures=3):
    with capture(execute=False) as callbacks:
        result = runtime.job_reap_expired_leases(max_failures=max_failures)
    return result, callbacks


def test_expired_lease_is_requeued_and_enqueued_again(running_job, django_capture_on_commit_callbacks):
    expire(running_job)
    result, callbacks = reap(django_capture_on_commit_callbacks)
    job = Job.objects.get(pk=running_job.pk)
    assert result["requeued"] == [job.pk] and not result["failed"]
    assert len(callbacks) == 1
    assert job.status == Job.Status.QUEUED and job.attempt == 1
    assert (job.lease_owner, job.lease_expires_at) == ("", None)


def test_expired_lease_at_the_failure_cap_fails_the_job(running_job, django_capture_on_commit_callbacks):
    expire(running_job, failures=2)
    result, callbacks = reap(django_capture_on_commit_callbacks, max_failures=3)
    job = Job.objects.get(pk=running_job.pk)
    assert (result["requeued"], result["failed"], callbacks) == ([], [job.pk], [])
    assert job.failures == 3 and "3 time(s)" in job.error_message
    assert job.status == Job.Status.FAILED and job.error_kind == Job.ErrorKind.LOST
    assert job.finished_at is not None and job.lease_expires_at is None


def test_live_lease_is_left_alone(running_job, django_capture_on_commit_callbacks):
    result, callbacks = reap(django_capture_on_commit_callbacks)
    job = Job.objects.get(pk=running_job.pk)
    assert (result["requeued"], result["failed"], callbacks) == ([], [], [])
    assert (job.status, job.attempt, job.lease_owner) == (Job.Status.RUNNING, 1, "worker-1")
    assert job.lease_expires_at == running_job.lease_expires_at


def test_expired_lease_of_a_job_asked_to_cancel_ends_cancelled(running_job, django_capture_on_commit_callbacks):
    assert runtime.job_cancel(job=running_job).cancel_requested
    expire(running_job)
    result, callbacks = reap(django_capture_on_commit_callbacks)
    job = Job.objects.get(pk=running_job.pk)
    assert (result["requeued"], result["failed"], callbacks) == ([], [], [])
    assert job.status == Job.Status.CANCELLED and job.error_kind == Job.ErrorKind.CANCELLED
    assert job.finished_at is not None
