"""Team quotas: concurrent jobs, compute hours per calendar month, storage bytes. The checks read usage; the
services run them under a lock on the team row (SELECT ... FOR UPDATE) in the transaction that creates the
job or dataset, so concurrent submissions are counted one after another and cannot slip past a limit."""

from django.db.models import Sum
from django.utils import timezone

from .models import Artifact, Dataset, Job

ACTIVE = (Job.Status.QUEUED, Job.Status.RUNNING)


def month_start(now=None):
    return (now or timezone.now()).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def active_jobs(team_id: int) -> int:
    return Job.objects.filter(team_id=team_id, status__in=ACTIVE).count()


def compute_seconds_this_month(team_id: int) -> float:
    """Training seconds (any device) of the team's jobs that started this month, running ones included."""
    used = Job.objects.filter(team_id=team_id, started_at__gte=month_start()).aggregate(s=Sum("run_seconds"))["s"]
    return float(used or 0)


def storage_used(team_id: int) -> dict[str, int]:
    """Bytes the team stores, by kind: datasets, adapters and the checkpoints of unfinished jobs."""
    datasets = Dataset.objects.filter(team_id=team_id).aggregate(b=Sum("size_bytes"))["b"] or 0
    adapters = Artifact.objects.filter(job__team_id=team_id).aggregate(b=Sum("size_bytes"))["b"] or 0
    checkpoints = (
        Job.objects.filter(team_id=team_id, checkpoint__isnull=False).aggregate(b=Sum("checkpoint__size"))["b"] or 0
    )
    return {"datasets": int(datasets), "adapters": int(adapters), "checkpoints": int(checkpoints)}


def _size(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} bytes"


def storage_error(team, adding: int = 0) -> str | None:
    if team.max_storage_bytes is None:
        return None
    used = sum(storage_used(team.pk).values())
    if used + adding > team.max_storage_bytes:
        return (
            f"{team.name} stores {_size(used)} and this would add {_size(adding)}; its storage limit is "
            f"{_size(team.max_storage_bytes)}. Delete datasets or ask an admin to raise the limit"
        )
    return None


def job_error(team) -> str | None:
    """Why the team may not queue another job now, or None."""
    if team.max_concurrent_jobs is not None:
        active = active_jobs(team.pk)
        if active >= team.max_concurrent_jobs:
            return (
                f"{team.name} has {active} job(s) queued or running; its limit is {team.max_concurrent_jobs}. "
                "Wait for one to finish, cancel one, or ask an admin to raise the limit"
            )
    if team.compute_hours_per_month is not None:
        used = compute_seconds_this_month(team.pk) / 3600
        if used >= team.compute_hours_per_month:
            return (
                f"{team.name} has used {used:.1f} of its {team.compute_hours_per_month:g} compute hours this "
                "month; ask an admin to raise the limit, or wait for next month"
            )
    return storage_error(team)
