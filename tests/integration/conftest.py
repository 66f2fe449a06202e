"""Fixtures of the integration tests that run workers on a Redis server of their own."""

import pytest

from jobs.models import Job
from tests.conftest import wait_for
from tests.factories import job_for
from tests.integration.runtime_support import RedisServer, point_celery_at

FINAL = (Job.Status.SUCCEEDED, Job.Status.FAILED, Job.Status.CANCELLED)


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    old = point_celery_at(server.url)
    yield server
    point_celery_at(old)
    server.stop()


@pytest.fixture
def submit(alice, dataset, tiny_model):
    """submit(epochs, **params): a job of alice's whose queue message goes to the workers once committed. It
    trains every epoch asked for (patience 0): these tests need runs of a known length, not early stopping."""

    def make(epochs: int = 6, **params) -> Job:
        params = {"epochs": epochs, "batch_size": 4, "max_length": 24, "patience": 0, **params}
        return job_for(alice, dataset, tiny_model, capture=False, params=params)

    return make


def job_of(job: Job) -> Job:
    return Job.objects.get(pk=job.pk)


def until_final(job: Job, timeout: float = 240) -> Job:
    return wait_for(
        lambda: (j := job_of(job)).status in FINAL and j, timeout=timeout, interval=0.3, what=f"job {job.pk} to end"
    )
