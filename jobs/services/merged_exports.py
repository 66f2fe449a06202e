"""Writes for merged exports: a member asks for a succeeded job's adapter folded into its base model; the
maintenance worker builds it (jobs/merged_exports.py) and stores it as the job's MERGED artifact."""

from django.db import transaction
from django.utils import timezone

from peftcore.merge import merge_refusal
from teams.models import Membership
from teams.permissions import require

from .. import dispatch
from ..errors import ValidationFailed
from ..models import Artifact, Job, MergedExport
from ..storage import blob_delete
from .job_checks import GROUP_REFUSAL


def job_merge_refusal(job: Job) -> str | None:
    """Why the job's adapter cannot be merged into its base model (None: it can); a group run's are many."""
    if job.group_column and not job.task_per_group:
        return GROUP_REFUSAL
    return merge_refusal(job.method, job.task, method_params=job.method_params)


def merged_export_request(*, actor, job: Job) -> MergedExport:
    """Queue the export once; asking again returns the one queued, running or done (a failed one is retried)."""
    require(actor, actor.team, Membership.Role.MEMBER)
    if job.status != Job.Status.SUCCEEDED:
        raise ValidationFailed(
            f"job #{job.pk} is {job.status}; only a succeeded job has an adapter to merge", errors={"job": job.status}
        )
    if refusal := job_merge_refusal(job):
        raise ValidationFailed(refusal, errors={"method": refusal})
    with transaction.atomic():
        export, created = MergedExport.objects.select_for_update().get_or_create(
            job=job, defaults={"requested_by": actor.user}
        )
        if not created and export.status != MergedExport.Status.FAILED:
            return export
        if not created:
            export.status, export.message, export.finished_at = MergedExport.Status.QUEUED, "", None
            export.requested_by = actor.user
            export.save(update_fields=["status", "message", "finished_at", "requested_by"])
        dispatch.publish_on_commit(dispatch.EXPORT_MERGED, export.pk)
    return export


def merged_export_start(*, export: MergedExport) -> bool:
    """Mark it running; False when it is not queued any more (done by an earlier message)."""
    return bool(
        MergedExport.objects.filter(pk=export.pk, status=MergedExport.Status.QUEUED).update(
            status=MergedExport.Status.RUNNING
        )
    )


def merged_export_finish(*, export: MergedExport, blob=None, filename: str = "", message: str = "") -> None:
    """Store the merged model (blob) as the job's artifact and mark the export done, or mark it failed."""
    with transaction.atomic():
        if blob is not None:
            old = Artifact.objects.filter(job_id=export.job_id, kind=Artifact.Kind.MERGED).first()
            if old is not None:
                old.delete()
                blob_delete(old.blob)
            Artifact.objects.create(
                job_id=export.job_id,
                kind=Artifact.Kind.MERGED,
                filename=filename,
                blob=blob,
                size_bytes=blob.size,
                sha256=blob.sha256,
            )
        MergedExport.objects.filter(pk=export.pk).update(
            status=MergedExport.Status.DONE if blob is not None else MergedExport.Status.FAILED,
            message=message[-2000:],
            finished_at=timezone.now(),
        )
