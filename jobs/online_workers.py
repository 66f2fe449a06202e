"""Which workers are online: a read of their heartbeat rows, on its own so the dashboard, the job form's estimate
and the queued job's page can all ask without importing each other."""

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from .models import WorkerHeartbeat


def workers_online() -> list[WorkerHeartbeat]:
    """Workers heard from within three heartbeats that did not stop cleanly."""
    since = timezone.now() - timedelta(seconds=3 * settings.WORKER_HEARTBEAT_SECONDS)
    return list(WorkerHeartbeat.objects.filter(seen_at__gte=since, stopped=False).order_by("hostname"))
