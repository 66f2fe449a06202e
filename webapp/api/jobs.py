"""Jobs: submit, list, compare, leaderboards, detail, report, cancel, resume, attempts, adapter download."""

from typing import Any, Literal

from django.http import Http404, HttpResponse
from ninja import Field, Router, Schema, Status

from jobs import comparison, runtime, selectors, services
from jobs.errors import ValidationFailed
from jobs.models import Artifact, Job
from teams.audit import audit_record
from teams.errors import Conflict
from teams.models import Membership
from teams.permissions import require

from ..uploads import artifact_response
from .paging import clamp_limit, link_next
from .schemas import Attempt, CombineIn, Detail, FieldErrors, JobIn, JobOut, job_out, queue_places

Role = Membership.Role

router = Router(tags=["jobs"])


def _get_or_400(getter, field: str, **kwargs):
    try:
        return getter(**kwargs)
    except Http404:
        raise ValidationFailed("the job has errors; fix the fields named", errors={field: "not found"}) from None


@router.post("/jobs", response={201: JobOut, 400: FieldErrors})
def job_create(request, payload: JobIn):
    team = require(request.actor, request.actor.team, Role.MEMBER).team
    try:
        dataset = _get_or_400(selectors.dataset_get, "dataset", actor=request.actor, dataset_id=payload.dataset)
        eval_dataset = (
            _get_or_400(selectors.dataset_get, "eval_dataset", actor=request.actor, dataset_id=payload.eval_dataset)
            if payload.eval_dataset
            else None
        )
        model = _get_or_400(selectors.base_model_get, "base_model", actor=request.actor, model_id=payload.base_model)
        start_from = (
            _get_or_400(selectors.job_get, "start_from", actor=request.actor, job_id=payload.start_from)
            if payload.start_from
            else None
        )
        job = services.job_create(
            team=team,
            user=request.user,
            dataset=dataset,
            eval_dataset=eval_dataset,
            base_model=model,
            method=payload.method,
            task=payload.task,
            text_column=payload.text_column,
            label_column=payload.label_column,
            method_params=payload.method_params,
            params=payload.params,
            name=payload.name,
            start_from=start_from,
            start_mode=payload.start_mode,
            input_column=payload.input_column,
            messages_column=payload.messages_column,
            template=payload.template,
            priority=Job.Priority[payload.priority.upper()],
            time_limit_seconds=payload.time_limit_minutes * 60 if payload.time_limit_minutes is not None else None,
            group_column=payload.group_column,
            group_shared=payload.group_shared,
        )
    except ValidationFailed as exc:
        return Status(400, {"detail": exc.message, "errors": exc.errors})
    return Status(201, job_out(job))


@router.post("/jobs/combine", response={201: JobOut, 400: FieldErrors})
def job_combine(request, payload: CombineIn):
    """Combine finished adapters into a new one, queued as a job that evaluates it beside each parent."""
    team = require(request.actor, request.actor.team, Role.MEMBER).team
    try:
        parents = [_get_or_400(selectors.job_get, "parents", actor=request.actor, job_id=pk) for pk in payload.parents]
        eval_dataset = (
            _get_or_400(selectors.dataset_get, "eval_dataset", actor=request.actor, dataset_id=payload.eval_dataset)
            if payload.eval_dataset
            else None
        )
        job = services.job_combine_create(
            team=team,
            user=request.user,
            parents=parents,
            weights=payload.weights,
            combination=payload.combination,
            density=payload.density,
            eval_dataset=eval_dataset,
            name=payload.name,
            priority=Job.Priority[payload.priority.upper()],
        )
    except ValidationFailed as exc:
        return Status(400, {"detail": exc.message, "errors": exc.errors})
    return Status(201, job_out(job))


@router.get("/jobs", response=list[JobOut])
def job_list(
    request,
    response: HttpResponse,
    status: str | None = None,
    method: str | None = None,
    dataset: int | None = None,
    task: str | None = None,
    member: str | None = None,
    search: str | None = None,
    before: int | None = None,
    limit: int = 100,
):
    """Your team's jobs, newest first, filtered by any of status, method, dataset id, task, member (user name)
    and search (in the name). One page of at most `limit` (up to 1,000); a `Link: <...>; rel="next"` header
    gives the next page (`before`: the cursor), absent on the last."""
    filters = dict(status=status, method=method, dataset=dataset, task=task, member=member, search=search)
    jobs, next_before = selectors.job_page(actor=request.actor, before=before, limit=clamp_limit(limit), **filters)
    link_next(request, response, next_before)
    positions = queue_places(jobs)
    return [job_out(job, positions) for job in jobs]


class CompareRow(Schema):
    section: Literal["metrics", "efficiency", "configuration"]
    name: str
    values: list[Any] = Field(description="one value per job, in the order of `jobs`")
    differs: bool
    best: list[int] = Field(description="indexes of the jobs with the best value (metrics and efficiency)")


class CompareOut(Schema):
    jobs: list[JobOut]
    rows: list[CompareRow]
    curves: dict[str, list[tuple[int, float]]] = Field(description="'#id loss' / '#id eval_loss': [step, value]")


@router.get("/jobs/compare", response={200: CompareOut, 400: Detail})
def job_compare(request, ids: str):
    """Jobs side by side (`ids=3,5,8`, at most 8): metrics, efficiency and configuration, with the rows that
    differ marked and the best values named, plus their loss curves. Other teams' ids are left out."""
    try:
        wanted = comparison.parse_ids([ids])
    except ValueError as exc:
        return 400, {
            "detail": str(exc)
            if isinstance(exc, comparison.TooManyJobs)
            else "ids is a comma-separated list of job ids, such as 3,5"
        }
    result = comparison.job_compare(actor=request.actor, ids=wanted)
    positions = queue_places(result["jobs"])
    return 200, {**result, "jobs": [job_out(job, positions) for job in result["jobs"]]}


@router.get("/datasets/{dataset_id}/leaderboard", response=list[JobOut])
def dataset_leaderboard(
    request,
    dataset_id: int,
    metric: Literal[
        "accuracy", "macro_f1", "eval_loss", "rouge_l", "bleu", "exact_match", "answer_match", "perplexity"
    ] = "accuracy",
):
    """The team's best succeeded jobs trained on this dataset, best first by `metric`."""
    dataset = selectors.dataset_get(actor=request.actor, dataset_id=dataset_id)
    return [
        job_out(job, {})
        for job in comparison.dataset_leaderboard(actor=request.actor, dataset_id=dataset.pk, metric=metric)
    ]


@router.get("/jobs/{job_id}", response=JobOut)
def job_detail(request, job_id: int):
    return job_out(selectors.job_get(actor=request.actor, job_id=job_id))


class JobRename(Schema):
    name: str = Field(max_length=200)


@router.patch("/jobs/{job_id}", response={200: JobOut, 400: Detail})
def job_rename(request, job_id: int, payload: JobRename):
    """Rename a job."""
    job = selectors.job_get(actor=request.actor, job_id=job_id)
    require(request.actor, job.team_id, Role.MEMBER)
    try:
        services.job_rename(job=job, user=request.user, name=payload.name)
    except ValidationFailed as exc:
        return Status(400, {"detail": exc.message})
    return job_out(selectors.job_get(actor=request.actor, job_id=job_id))


@router.delete("/jobs/{job_id}", response={204: None, 409: Detail})
def job_delete(request, job_id: int):
    """Delete an ended job with its adapter, report and metrics; 409 while it is queued or running, or while
    another job starts from its adapter."""
    job = selectors.job_get(actor=request.actor, job_id=job_id)
    require(request.actor, job.team_id, Role.MEMBER)
    try:
        services.job_delete(job=job, user=request.user)
    except ValidationFailed as exc:
        return Status(409, {"detail": exc.message})
    return Status(204, None)


@router.get("/jobs/{job_id}/report", response={200: dict[str, Any], 404: Detail})
def job_report(request, job_id: int):
    report = selectors.job_report(job=selectors.job_get(actor=request.actor, job_id=job_id))
    if report is None:
        return Status(404, {"detail": "this job has no report yet; reports exist once a job succeeds"})
    return report


@router.post("/jobs/{job_id}/cancel", response=JobOut)
def job_cancel(request, job_id: int):
    job = selectors.job_get(actor=request.actor, job_id=job_id)
    require(request.actor, job.team_id, Role.MEMBER)
    return job_out(runtime.job_cancel(job=job, user=request.user))


@router.post("/jobs/{job_id}/resume", response={200: JobOut, 409: Detail})
def job_resume(request, job_id: int):
    """Queue a failed or cancelled job again; it goes on from its last checkpoint (checkpoint_step)."""
    job = selectors.job_get(actor=request.actor, job_id=job_id)
    require(request.actor, job.team_id, Role.MEMBER)
    try:
        return job_out(runtime.job_resume(job=job, user=request.user))
    except Conflict as exc:
        return Status(409, {"detail": str(exc)})


@router.get("/jobs/{job_id}/attempts", response=list[Attempt])
def job_attempts(request, job_id: int):
    """Each time a worker took the job: where, from which step, and how it ended."""
    return list(selectors.job_attempts(job=selectors.job_get(actor=request.actor, job_id=job_id)))


@router.get("/jobs/{job_id}/log", response={404: Detail})
def job_log(request, job_id: int):
    """The job's log as text: each attempt's phases, evaluations, checkpoints and errors, then the training
    process's own output; written when an attempt ends."""
    job = selectors.job_get(actor=request.actor, job_id=job_id)
    artifact = selectors.job_artifact(job=job, kind=Artifact.Kind.LOG)
    if artifact is None:
        return Status(404, {"detail": f"job {job.pk} has no log yet; it is written when an attempt ends"})
    return artifact_response(artifact)


@router.get("/jobs/{job_id}/adapter", response={404: Detail}, url_name="job_adapter")
def job_adapter(request, job_id: int):
    job = selectors.job_get(actor=request.actor, job_id=job_id)
    artifact = selectors.job_artifact(job=job)
    if artifact is None:
        detail = f"job {job.pk} has no adapter (status: {job.status}); adapters exist once a job succeeds"
        return Status(404, {"detail": detail})
    audit_record(team_id=job.team_id, user=request.user, action="adapter.download", target=f"job {job.pk}")
    return artifact_response(artifact)
