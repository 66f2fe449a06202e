"""Publishing "work is ready" messages by task name.

Writers (services, runtime, notifications) publish through here instead of importing the Celery entry points,
so the imports run one way: tasks -> the code they run -> services, never back. Routing to queues stays in
settings (CELERY_TASK_ROUTES), which Celery applies to a task sent by name as to any other.
"""

from datetime import timedelta

from celery import current_app
from django.db import transaction
from django.utils import timezone

# The names jobs/tasks.py registers (tests/jobs/test_dispatch.py checks each one exists).
RUN_JOB = "jobs.run_job"
SEND_NOTIFICATIONS = "jobs.send_notifications"
PROFILE_BASE_MODEL = "jobs.profile_base_model"
COUNT_TRAINABLE = "jobs.count_trainable"
COUNT_TOKENS = "jobs.count_tokens"
PLAYGROUND_PREDICT = "jobs.playground_predict"


def publish(task: str, *args) -> None:
    current_app.send_task(task, args=list(args))


def publish_on_commit(task: str, *args) -> None:
    # robust: a broker that is down must not fail the write; the row stays and is asked for again.
    transaction.on_commit(lambda: publish(task, *args), robust=True)


def ask_worker(row, created: bool, retry_seconds: float, task: str) -> None:
    """Queue the task that fills row.result once committed: for a new row, and again for one still pending after
    retry_seconds (its message was lost, say to a broker restart)."""
    stale = row.result is None and not created and timezone.now() - row.requested_at > timedelta(seconds=retry_seconds)
    if stale:
        type(row).objects.filter(pk=row.pk).update(requested_at=timezone.now())
    if created or stale:
        publish_on_commit(task, row.pk)
