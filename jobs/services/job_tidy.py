"""Tidying the job list: rename a job, delete an ended one with everything it stored (issue 20, item 7)."""

from django.db import transaction

from teams.audit import audit_record

from ..errors import ValidationFailed
from ..models import Artifact, Blob, Job


def job_rename(*, job: Job, user, name: str) -> Job:
    name = " ".join(name.split())[:200]
    if not name:
        raise ValidationFailed("give the job a name", errors={"name": "empty"})
    if "\x00" in name:
        raise ValidationFailed("a name cannot contain NUL characters", errors={"name": "NUL"})
    old = job.name
    with transaction.atomic():
        Job.objects.filter(pk=job.pk).update(name=name)
        audit_record(team_id=job.team_id, user=user, action="job.rename", target=f"job {job.pk}", old=old, new=name)
    job.name = name
    return job


def job_delete(*, job: Job, user) -> None:
    """Delete an ended job with its adapter, merged export, checkpoint, report, metrics and playground runs.
    Refused while it is queued or running (cancel it first) and while another job starts from its adapter."""
    with transaction.atomic():
        locked = Job.objects.select_for_update().filter(pk=job.pk).first()
        if locked is None:
            return
        if locked.status in (Job.Status.QUEUED, Job.Status.RUNNING):
            raise ValidationFailed(
                f"job #{job.pk} is {locked.status}; cancel it first, then delete it", errors={"status": locked.status}
            )
        users = list(Job.objects.filter(start_from=locked).values_list("pk", flat=True)[:5])
        if users:
            shown = ", ".join(f"#{pk}" for pk in users)
            raise ValidationFailed(
                f"job(s) {shown} start from this job's adapter; delete them first, or keep this one",
                errors={"start_from": shown},
            )
        blob_ids = list(Artifact.objects.filter(job=locked).values_list("blob_id", flat=True))
        if locked.checkpoint_id:
            blob_ids.append(locked.checkpoint_id)
        audit_record(
            team_id=locked.team_id,
            user=user,
            action="job.delete",
            target=f"job {locked.pk}",
            name=locked.name,
            method=locked.method,
        )
        locked.delete()  # cascades: artifacts, report, metric points, attempts, exports, playground runs
        Blob.objects.filter(pk__in=blob_ids).delete()  # their bytes (and S3 objects, once committed)
