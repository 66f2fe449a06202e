"""No queued job waits while a worker is idle (issue 18, row 9). Postgres holds the queue; a broker message only
says "some job is ready", and one can be lost (a broker down when the job was committed, flushed, restarted).
So a training worker does not rely on messages alone:

- a runner that ends a job claims the next queued one at once (jobs.tasks.run_job), and
- each heartbeat of an idle worker (jobs.workers) publishes "work is ready" for its free slots while a job has
  waited longer than a message takes; a broker still down fails the publish, and the next heartbeat, seconds
  after it is back, succeeds.
A duplicate message costs nothing: its claim finds the job taken.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from . import dispatch
from .models import Job

log = logging.getLogger(__name__)

TRAINING_QUEUE = "training"


def idle_slots(*, worker: str, concurrency: int | None) -> int:
    running = Job.objects.filter(status=Job.Status.RUNNING, lease_owner__startswith=f"{worker}/").count()
    return max(0, (concurrency or 1) - running)


def work_waiting() -> bool:
    """A queued job has waited longer than its message should take to be claimed."""
    cutoff = timezone.now() - timedelta(seconds=settings.JOB_IDLE_NUDGE_SECONDS)
    return Job.objects.filter(status=Job.Status.QUEUED, cancel_requested=False, enqueued_at__lt=cutoff).exists()


def nudge_if_idle(*, worker: str, queues: list[str], concurrency: int | None) -> int:
    """Publish one "work is ready" message per free slot of this worker while queued work waits; how many were
    sent (0 when busy, when nothing waits, or when the broker is still down)."""
    if TRAINING_QUEUE not in queues:
        return 0
    slots = idle_slots(worker=worker, concurrency=concurrency)
    if not slots or not work_waiting():
        return 0
    sent = 0
    try:
        for _ in range(slots):
            dispatch.publish(dispatch.RUN_JOB, None)
            sent += 1
    except Exception:  # the broker is down: the next heartbeat tries again
        log.warning("queued jobs wait but the broker cannot be reached; retrying at the next heartbeat")
    return sent
