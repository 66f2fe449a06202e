"""Tidying the job list: rename a job, delete an ended one with everything it stored, keep a job's settings as a
named preset (issue 20, item 7)."""

from django.db import transaction

from teams.audit import audit_record

from ..errors import ValidationFailed
from ..models import Artifact, Blob, Job, JobPreset, MergedExport


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
        export = MergedExport.objects.filter(job=locked).first()
        if export is not None and export.status in (MergedExport.Status.QUEUED, MergedExport.Status.RUNNING):
            raise ValidationFailed(
                f"job #{job.pk}'s merged model is being built; delete the job once it is done",
                errors={"merged": export.status},
            )
        combining = list(
            Job.objects.filter(
                combine__parents__contains=[locked.pk], status__in=(Job.Status.QUEUED, Job.Status.RUNNING)
            ).values_list("pk", flat=True)[:5]
        )
        if combining:
            shown = ", ".join(f"#{pk}" for pk in combining)
            raise ValidationFailed(
                f"job(s) {shown} are combining this job's adapter; delete it once they have ended",
                errors={"combine": shown},
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


FORM_FIELDS = (
    "task",
    "method",
    "text_column",
    "label_column",
    "input_column",
    "messages_column",
    "template",
    "group_column",
)
TRAINING_PREFIX, METHOD_PREFIX = "p_", "m_"  # the job form's field prefixes (webapp/forms.py)


def job_form_query(job: Job) -> dict:
    """The job form filled as this job was: its data, model, method, columns and the settings its user typed.
    Settings the studio chose are left out, so they adapt again to whatever changes."""
    query = {"dataset": job.dataset_id, "base_model": job.base_model_id}
    if job.eval_dataset_id:
        query["eval_dataset"] = job.eval_dataset_id
    query.update({field: getattr(job, field) for field in FORM_FIELDS if getattr(job, field)})
    if job.group_shared:
        query["group_shared"] = "on"
    chosen = set(job.choices or {})
    for prefix, values, kind in (
        (TRAINING_PREFIX, job.params, "params"),
        (METHOD_PREFIX, job.method_params, "method_params"),
    ):
        for key, value in (values or {}).items():
            if value is None or value is False or f"{kind}.{key}" in chosen:
                continue  # empty, an unticked box, or the studio's own choice
            query[prefix + key] = "on" if value is True else value
    return query


def job_preset_create(*, job: Job, user, name: str) -> JobPreset:
    name = " ".join(name.split())[:100]
    if not name or "\x00" in name:
        raise ValidationFailed("give the preset a name", errors={"name": "empty"})
    with transaction.atomic():
        preset, created = JobPreset.objects.update_or_create(
            team_id=job.team_id, name=name, defaults={"query": job_form_query(job), "created_by": user}
        )
        audit_record(team_id=job.team_id, user=user, action="preset.save", target=f"job {job.pk}", name=name)
    return preset


def job_preset_delete(*, preset: JobPreset, user) -> None:
    with transaction.atomic():
        audit_record(team_id=preset.team_id, user=user, action="preset.delete", target=f"preset {preset.pk}")
        preset.delete()
