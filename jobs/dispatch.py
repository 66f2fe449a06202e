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
PREPARE_BASE_MODEL = "jobs.prepare_base_model"
EXPORT_MERGED = "jobs.export_merged"
COUNT_TRAINABLE = "jobs.count_trainable"
COUNT_TOKENS = "jobs.count_tokens"
PLAYGROUND_PREDICT = "jobs.playground_predict"
CHECK_DATASET = "jobs.check_dataset"


def publish(task: str, *args) -> None:
    current_app.send_task(task, args=list(args))


def publish_on_commit(task: str, *args) -> None:
    # robust: a broker that is down must not fail the write; the row stays and is asked for again.
    transaction.on_commit(lambda: publish(task, *args), robust=True)


# A result that failed for a passing reason (the worker ran out of memory, the database or model store hiccuped)
# is asked for again this long after it was asked, rather than shown for ever.
FAILED_RETRY_SECONDS = 60
FAILED_RETRIES = 4


def ask_worker(row, created: bool, retry_seconds: float, task: str) -> None:
    """Queue the task that fills row.result once committed: for a new row, again for one still pending after
    retry_seconds (its message was lost, say to a broker restart), and again for one whose worker marked its
    failure as worth retrying ({"retry": true}) after FAILED_RETRY_SECONDS."""
    age = timezone.now() - row.requested_at if not created else timedelta(0)
    pending = row.result is None and age > timedelta(seconds=retry_seconds)
    failed = isinstance(row.result, dict) and row.result.get("retry")
    # Each failure doubles the wait, and after FAILED_RETRIES the failure stands: a count that always runs the
    # worker out of memory must not crash it every minute for every viewer.
    tries = row.result.get("attempts", 1) if failed else 0
    failed = failed and tries <= FAILED_RETRIES and age > timedelta(seconds=FAILED_RETRY_SECONDS * 2 ** (tries - 1))
    stale = not created and (pending or failed)
    if stale:  # a failed result stays shown until the new count replaces it; the worker counts its attempts
        type(row).objects.filter(pk=row.pk).update(requested_at=timezone.now())
    if created or stale:
        publish_on_commit(task, row.pk)
