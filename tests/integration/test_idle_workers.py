"""No queued job waits while a worker is idle (issue 18, row 9), with the production republish interval (30
minutes) and no beat: the only way work reaches a worker here is a message or the worker itself. Messages are
lost by flushing the broker, as a broker that was down or restarted loses them."""

import pytest

from jobs import dispatch
from jobs.models import Job, JobAttempt
from tests.integration.conftest import until_final
from tests.integration.runtime_support import Worker

pytestmark = pytest.mark.django_db(transaction=True)

PRODUCTION_REPUBLISH = {"JOB_REPUBLISH_SECONDS": "1800"}


@pytest.fixture
def worker(broker, tiny_model_dir):  # the workers load the tiny model from its folder
    started = []

    def start(name: str, **env) -> Worker:
        started.append(Worker(name, broker, env={**PRODUCTION_REPUBLISH, **env}))
        return started[-1]

    yield start
    for w in started:
        w.kill()


def test_an_idle_worker_takes_jobs_whose_messages_were_lost(broker, worker, submit):
    jobs = [submit(epochs=1) for _ in range(2)]
    broker.client().flushdb()  # both messages gone, as when Redis was down at commit
    worker("idle", JOB_IDLE_NUDGE_SECONDS="2")
    for job in jobs:
        assert until_final(job, timeout=180).status == Job.Status.SUCCEEDED


def test_a_worker_that_ends_a_job_claims_the_next_without_a_message(broker, worker, submit):
    first, second = submit(epochs=1), submit(epochs=1)
    broker.client().flushdb()
    dispatch.publish(dispatch.RUN_JOB, first.pk)  # one message for two jobs
    # The idle nudge is held off (an hour), so only the end of the first job can start the second.
    started = worker("chain", JOB_IDLE_NUDGE_SECONDS="3600")
    assert until_final(first, timeout=180).status == Job.Status.SUCCEEDED
    assert until_final(second, timeout=180).status == Job.Status.SUCCEEDED
    assert started.log().count("Task jobs.run_job[") == 2  # received and succeeded: one message, two jobs
    assert JobAttempt.objects.get(job=second).worker.startswith(f"{started.name}/")
    assert broker.queue_length() == 0
