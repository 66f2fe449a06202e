"""Writes for jobs: creation (checked, under the team's quota lock) and queueing."""

from django.db import transaction

from peftcore import base_pruning, task_routing
from peftcore.methods import get_method
from peftcore.tasks import OPTIONAL_FIELDS, get_task
from teams.audit import audit_record
from teams.models import Team

from .. import quotas
from ..errors import ValidationFailed
from ..models import BaseModel, Dataset, Job
from ..runtime import job_enqueue_on_commit
from .job_checks import group_errors, job_validate, runtime_errors, start_errors


def job_create(
    *,
    team,
    user,
    dataset: Dataset,
    base_model: BaseModel,
    method: str,
    text_column: str = "",
    label_column: str = "",
    task: str = "text-classification",
    eval_dataset: Dataset | None = None,
    method_params: dict | None = None,
    params: dict | None = None,
    name: str = "",
    start_from: Job | None = None,
    start_mode: str = "",
    input_column: str = "",
    messages_column: str = "",
    template: str = "",
    priority: int = Job.Priority.NORMAL,
    time_limit_seconds: int | None = None,
    sweep=None,
    group_column: str = "",
    group_shared: bool = False,
) -> Job:
    # Everything a job uses belongs to the job's own team (or, for base models, to every team).
    foreign = {
        field: "not found"
        for field, obj in (("dataset", dataset), ("eval_dataset", eval_dataset), ("start_from", start_from))
        if obj is not None and obj.team_id != team.pk
    }
    if base_model.team_id not in (None, team.pk):
        foreign["base_model"] = "not found"
    if foreign:
        raise ValidationFailed("the job has errors; fix the fields named", errors=foreign)
    problems = runtime_errors(priority=priority, time_limit_seconds=time_limit_seconds)
    used = (text_column, label_column, input_column, messages_column)
    problems.update(
        group_errors(
            dataset, group_column, used, shared=group_shared, method=method, task=task, eval_dataset=eval_dataset
        )
    )
    if base_pruning.wanted(params or {}) and (group_column or start_from is not None):
        # the cut is made once, on the base model, by one run: not per group, nor again under a trained adapter
        problems["params.prune_heads"] = (
            "pruning the base model's heads and channels works on a run that starts from the base model with one "
            "adapter; set both shares to 0 for "
            + ("a job with a group column" if group_column else "a run that starts from another job's adapter")
        )
    if problems:
        raise ValidationFailed("the job has errors; fix the fields named", errors=problems)
    if start_from is not None:
        start_mode = start_mode or "continue"
        errors = start_errors(
            start_from=start_from,
            start_mode=start_mode,
            base_model=base_model,
            method=method,
            task=task,
            dataset=dataset,
            label_column=label_column,
        )
        if errors:
            raise ValidationFailed("the job has errors; fix the fields named", errors=errors)
        if start_mode == "continue":
            method_params = start_from.method_params  # the adapter's shape is fixed by what it was trained with
    else:
        start_mode = ""
    clean_method, clean_params, choices = job_validate(
        dataset=dataset,
        eval_dataset=eval_dataset,
        base_model=base_model,
        method=method,
        task=task,
        text_column=text_column,
        label_column=label_column,
        method_params=method_params,
        params=params,
        input_column=input_column,
        messages_column=messages_column,
        template=template,
    )
    # Only what the task reads is kept (a messages column replaces the others).
    kept = get_task(task).fields
    given = {"input_column": input_column, "messages_column": messages_column, "template": template}
    extra = {field: given[field] if field in kept else "" for field in OPTIONAL_FIELDS}
    if extra["messages_column"]:
        text_column = label_column = extra["input_column"] = ""
    return job_insert(
        team=team,
        user=user,
        audit={"action": "job.create", "method": method, "task": task, "dataset": dataset.pk},
        name=name[:200] or f"{method} on {dataset.name}",
        dataset=dataset,
        eval_dataset=eval_dataset,
        base_model=base_model,
        task=task,
        method=method,
        method_params=clean_method,
        params=clean_params,
        choices=choices,
        text_column=text_column,
        label_column=label_column,
        **extra,
        start_from=start_from,
        start_mode=start_mode,
        priority=priority,
        time_limit_seconds=time_limit_seconds,
        sweep=sweep,
        group_column=group_column,
        group_shared=bool(group_column) and group_shared,
        task_per_group=task_routing.routes_tasks(get_method(method), group_column),
    )


def job_insert(*, team, user, audit: dict, **fields) -> Job:
    """The row of a checked job, written under the team's lock once its quota allows, audited and queued when the
    transaction commits. Every kind of job (trained, combined, a sweep's) is created through here."""
    with transaction.atomic():
        locked = Team.objects.select_for_update().filter(pk=team.pk).first()  # concurrent submissions queue here
        if locked is None:
            raise ValidationFailed("this team has been deleted", errors={"team": "deleted"})
        if error := quotas.job_error(locked):
            raise ValidationFailed(error, errors={"quota": error})
        job = Job.objects.create(team=team, created_by=user, **fields)
        audit_record(team_id=team.pk, user=user, target=f"job {job.pk}", **audit)
        job_enqueue_on_commit(job.pk)
    return job
