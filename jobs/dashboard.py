"""Reads for the team admin dashboard: a fixed number of queries whatever the team's size (aggregates in
SQL, lists cut to a page)."""

from datetime import timedelta

from django.db.models import Count, Sum
from django.db.models.functions import TruncDay, TruncMonth
from django.utils import timezone

from teams.models import AuditEntry, Membership, Team

from . import quotas
from .models import Job, StorageSweep, Webhook
from .online_workers import workers_online
from .selectors import queue_positions, webhook_failed_deliveries, webhook_list

RECENT = 10


def usage_by_member_month(*, team: Team, months: int = 6) -> list[dict]:
    """Training seconds and jobs per member and calendar month (newest first)."""
    since = quotas.month_start() - timedelta(days=31 * (months - 1))
    return list(
        Job.objects.filter(team=team, started_at__gte=since.replace(day=1))
        .annotate(month=TruncMonth("started_at"))
        .values("month", "created_by__username", "device")
        .annotate(seconds=Sum("run_seconds"), jobs=Count("pk"))
        .order_by("-month", "created_by__username")
    )


def daily_compute_hours(*, team: Team, days: int = 30) -> list[tuple[int, float]]:
    """(day index, training hours) over the last `days` days, for the usage chart."""
    first = _first_day(days)
    rows = dict(
        Job.objects.filter(team=team, started_at__gte=first)
        .annotate(day=TruncDay("started_at"))
        .values("day")
        .annotate(seconds=Sum("run_seconds"))
        .values_list("day", "seconds")
    )
    by_day = {day.date(): seconds for day, seconds in rows.items()}
    return [(i, round((by_day.get((first + timedelta(days=i)).date()) or 0) / 3600, 3)) for i in range(days)]


def day_names(days: int = 30) -> dict[int, str]:
    """The daily chart's x positions (daily_compute_hours' day index) as dates, "Dec 6"."""
    first = _first_day(days)
    return {i: f"{(day := first + timedelta(days=i)):%b} {day.day}" for i in range(days)}


def _first_day(days: int):
    """Midnight (UTC) that starts the last `days` days, today included: the daily chart's day 0."""
    return timezone.now().replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=days - 1)


def storage_reclaimed(*, days: int = 30) -> dict:
    """What the storage sweep reclaimed over the last `days` days (orphan blobs, stale upload files), and when it
    last ran; None for last when it has not run yet."""
    since = timezone.now() - timedelta(days=days)
    totals = StorageSweep.objects.filter(ran_at__gte=since).aggregate(
        blobs=Sum("blobs"), blob_bytes=Sum("blob_bytes"), files=Sum("files"), file_bytes=Sum("file_bytes")
    )
    totals = {key: value or 0 for key, value in totals.items()}
    return {
        **totals,
        "bytes": totals["blob_bytes"] + totals["file_bytes"],
        "days": days,
        "last": StorageSweep.objects.values_list("ran_at", flat=True).first(),
    }


def team_dashboard(*, team: Team) -> dict:
    by_status = dict(Job.objects.filter(team=team).values("status").annotate(n=Count("pk")).values_list("status", "n"))
    by_method = list(Job.objects.filter(team=team).values("method").annotate(n=Count("pk")).order_by("-n", "method"))
    queued = list(
        Job.objects.filter(team=team, status=Job.Status.QUEUED, cancel_requested=False)
        .only("pk", "name", "priority", "created_at")
        .order_by("-priority", "created_at", "pk")[:50]  # the team's next 50 (jobs/queue_order.py)
    )
    positions = queue_positions(job.pk for job in queued)
    for job in queued:
        job.queue_position = positions.get(job.pk)
    queued.sort(key=lambda job: job.queue_position or 10**9)
    used_seconds = quotas.compute_seconds_this_month(team.pk)
    storage = quotas.storage_used(team.pk)
    workers = workers_online()
    own_jobs = set(
        Job.objects.filter(team=team, pk__in=[w.running_job_id for w in workers if w.running_job_id]).values_list(
            "pk", flat=True
        )
    )
    for worker in workers:  # another team's job is only "busy" here
        worker.own_job_id = worker.running_job_id if worker.running_job_id in own_jobs else None
    return {
        "members": list(Membership.objects.filter(team=team).select_related("user").order_by("role", "user__username")),
        "by_status": {status: by_status.get(status, 0) for status in Job.Status.values},
        "by_method": by_method,
        "active_jobs": by_status.get(Job.Status.QUEUED, 0) + by_status.get(Job.Status.RUNNING, 0),
        "queued": queued,
        "failures": list(
            Job.objects.filter(team=team, status=Job.Status.FAILED)
            .order_by("-finished_at")
            .only("pk", "name", "error_kind", "error_message", "finished_at")[:RECENT]
        ),
        "compute_hours": used_seconds / 3600,
        "daily_hours": daily_compute_hours(team=team),
        "day_names": day_names(),
        "usage": usage_by_member_month(team=team),
        "storage": storage,
        "storage_total": sum(storage.values()),
        "workers": workers,
        "reclaimed": storage_reclaimed(),
        "audit": list(AuditEntry.objects.filter(team=team).select_related("user")[:20]),
        "webhooks": webhook_list(team=team),
        "webhook_failures": webhook_failed_deliveries(team=team),
        "webhook_events": Webhook.EVENTS,
    }
