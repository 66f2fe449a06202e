import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

app = Celery("studio")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

_heartbeat = None


@signals.worker_ready.connect
def _worker_ready(sender=None, **kwargs):
    """Start the worker's heartbeat row (jobs.workers) once the worker consumes."""
    global _heartbeat
    from jobs.workers import HeartbeatThread, clear_shutdown_flag

    clear_shutdown_flag()
    try:
        queues = sorted(q.name for q in sender.task_consumer.queues)
    except AttributeError:
        queues = []
    concurrency = getattr(getattr(sender, "controller", None), "concurrency", None)
    _heartbeat = HeartbeatThread(name=sender.hostname, queues=queues, concurrency=concurrency)
    _heartbeat.start()


@signals.worker_shutting_down.connect
def _worker_shutting_down(**kwargs):
    """SIGTERM: runners in this worker checkpoint their jobs and give them back (jobs.runner)."""
    from jobs.workers import mark_shutting_down

    mark_shutting_down()


@signals.worker_shutdown.connect
def _worker_shutdown(**kwargs):
    from jobs.workers import clear_shutdown_flag

    if _heartbeat is not None:
        _heartbeat.stop()
    clear_shutdown_flag()
