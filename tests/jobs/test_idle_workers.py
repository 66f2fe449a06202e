"""When an idle worker asks for queued work (jobs/idle_workers.py): only on the training queue, only for free
slots, only once a job has waited longer than its message should take; a broker that is down is tried again at
the next heartbeat instead of failing the heartbeat. The end-to-end behaviour, with real workers and lost
messages, is in tests/integration/test_idle_workers.py."""

from datetime import timedelta

from django.utils import timezone

from jobs import dispatch, idle_workers
from jobs.models import Job
from tests.factories import job_row


def _sent(monkeypatch) -> list:
    sent = []
    monkeypatch.setattr(dispatch, "publish", lambda task, *args: sent.append((task, args)))
    return sent


def test_an_idle_training_worker_asks_once_per_free_slot_for_work_that_waited(dataset, tiny_model, monkeypatch):
    sent = _sent(monkeypatch)
    job = job_row(dataset, tiny_model, status=Job.Status.QUEUED)
    assert idle_workers.nudge_if_idle(worker="w@h", queues=["training"], concurrency=2) == 0  # just queued
    Job.objects.filter(pk=job.pk).update(enqueued_at=timezone.now() - timedelta(minutes=1))
    assert idle_workers.nudge_if_idle(worker="w@h", queues=["maintenance"], concurrency=2) == 0
    assert idle_workers.nudge_if_idle(worker="w@h", queues=["training"], concurrency=2) == 2
    job_row(dataset, tiny_model, status=Job.Status.RUNNING, lease_owner="w@h/123")
    assert idle_workers.nudge_if_idle(worker="w@h", queues=["training"], concurrency=2) == 1
    assert idle_workers.nudge_if_idle(worker="w@h", queues=["training"], concurrency=1) == 0
    assert sent == [(dispatch.RUN_JOB, (None,))] * 3
    Job.objects.filter(pk=job.pk).update(cancel_requested=True)  # a cancelled job is not work
    assert idle_workers.nudge_if_idle(worker="w@h", queues=["training"], concurrency=2) == 0


def test_a_broker_that_is_down_fails_no_heartbeat(dataset, tiny_model, monkeypatch):
    def down(task, *args):
        raise ConnectionRefusedError("redis is down")

    monkeypatch.setattr(dispatch, "publish", down)
    job = job_row(dataset, tiny_model, status=Job.Status.QUEUED)
    Job.objects.filter(pk=job.pk).update(enqueued_at=timezone.now() - timedelta(minutes=1))
    assert idle_workers.nudge_if_idle(worker="w@h", queues=["training"], concurrency=1) == 0
