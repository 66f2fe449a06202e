"""The JSON API under /api/v1/ (django-ninja: typed schemas and the OpenAPI document come for free).

Endpoints stay thin: they parse, call a selector or a service, and shape the answer.
"""

from datetime import datetime
from typing import Any, Literal

from django.conf import settings
from django.db import DataError
from django.http import Http404
from django.urls import reverse
from ninja import Field, File, Form, NinjaAPI, Schema, Status
from ninja.files import UploadedFile
from ninja.security import HttpBearer

from jobs import comparison, runtime, selectors, services
from jobs.models import Job
from jobs.errors import Conflict, Forbidden, Refused, ValidationFailed
from peftcore.methods import methods_as_json
from peftcore.recommend import recommend
from peftcore.tasks import SFT
from peftcore.tasks import TASKS as CORE_TASKS
from peftcore.schema import schema_as_json
from peftcore.training_params import TRAINING_PARAMS
from teams import selectors as teams_selectors
from teams.audit import audit_record
from teams.errors import Conflict, Forbidden, NotFound, Refused
from teams.models import Membership
from teams.permissions import require
from teams.services import api_token_authenticate

from .uploads import UploadTooLarge, artifact_response, uploaded_file_path


Role = Membership.Role


class BearerToken(HttpBearer):
    """The token's actor: its user, acting in the token's own team only (request.actor), whatever team the user
    works in on the pages."""

    def authenticate(self, request, token: str):
        actor = api_token_authenticate(raw=token)
        if actor is not None:
            request.user, request.actor = actor.user, actor
        return actor


api = NinjaAPI(title="Fine-tuning studio API", version="1", auth=BearerToken(), urls_namespace="api")


@api.exception_handler(Refused)
def _refused(request, exc):
    # A refusal an endpoint does not answer itself: one status per kind (teams.errors).
    status = 403 if isinstance(exc, Forbidden) else 404 if isinstance(exc, NotFound) else \
        409 if isinstance(exc, Conflict) else 400
    return api.create_response(request, {"detail": str(exc)}, status=status)


@api.exception_handler(DataError)
def _nul_character(request, exc):
    # psycopg refuses a NUL character in text before sending anything (the transaction stays usable): the
    # client sent one, in a body, form, query or path value. Any other data error is the studio's own fault.
    if "NUL (0x00)" not in str(exc):
        raise exc
    return api.create_response(request, {"detail": "text cannot contain NUL (\\u0000) characters; remove them "
                                                   "and send the request again"}, status=400)


class RowError(Schema):
    row: int | None
    message: str


class DatasetErrors(Schema):
    detail: str
    errors: list[RowError] = []  # absent when the request itself was refused (a NUL character in a field)


class FieldErrors(Schema):
    detail: str
    # Absent when the body itself could not be read (django-ninja answers malformed JSON with detail only).
    errors: dict[str, str] = Field({}, description="field name: what to fix")


class Detail(Schema):
    detail: str


class DatasetOut(Schema):
    id: int
    name: str
    filename: str
    format: str
    rows: int
    columns: list[str]
    size_bytes: int
    sha256: str
    created_at: datetime
    warnings: list[dict[str, Any]] = Field(
        [], description="what training can live with but you should know: duplicates, conflicting labels, "
                        "imbalance, labels too small to split (each with a code, a message and example rows)")

    @staticmethod
    def resolve_warnings(obj) -> list[dict[str, Any]]:
        if hasattr(obj, "warnings_json"):  # annotated by the list query: stats itself stays deferred
            return obj.warnings_json or []
        return (obj.stats or {}).get("warnings", [])


class DatasetDetail(DatasetOut):
    preview: list[dict[str, Any]]
    stats: dict[str, Any]


class ModelOut(Schema):
    id: int
    name: str
    source: str
    revision: str
    description: str


class JobIn(Schema):
    dataset: int
    eval_dataset: int | None = None
    base_model: int
    method: str
    task: str = Field("text-classification", description="text-classification, sft or seq2seq")
    text_column: str = Field("", description="the text (classification), prompt (sft; a path such as "
                             "instances[0].output may reach into nested JSON) or input (seq2seq) column")
    label_column: str = Field("", description="the label, response (sft) or target (seq2seq) column")
    input_column: str = Field("", description="sft: an optional column appended to the prompt")
    messages_column: str = Field("", description="sft: a column of chat messages [{role, content}], instead of "
                                 "text_column and label_column")
    template: str = Field("", description="sft: auto (the tokenizer's chat template, else alpaca), alpaca, chatml "
                          "or plain")
    name: str = ""
    params: dict[str, Any] = {}
    method_params: dict[str, Any] = {}
    start_from: int | None = Field(None, description="a succeeded job of your team whose adapter this job starts from")
    start_mode: Literal["continue", "stack"] = Field(
        "continue", description="continue: train that adapter further (its method and parameters are kept); "
        "stack: keep it frozen and train a new adapter of any method on top")
    priority: Literal["low", "normal", "high"] = Field(
        "normal", description="order among your team's queued jobs (teams share workers fairly whatever this says)")
    time_limit_minutes: int | None = Field(
        None, description="minutes of training before the job stops as timed out (resumable); default: the "
        "studio's limit")


class Progress(Schema):
    step: int
    total: int
    fraction: float
    eta_seconds: float | None
    loss: float | None = Field(None, description="the latest training loss (null until the first step)")


class JobError(Schema):
    kind: str
    message: str


class Attempt(Schema):
    number: int
    worker: str
    resumed_from_step: int
    micro_batch_size: int | None
    started_at: datetime
    ended_at: datetime | None
    outcome: str
    message: str


class JobOut(Schema):
    id: int
    name: str
    status: str
    queue_position: int | None = Field(description="1 = next to start; null unless queued")
    priority: str
    attempt: int
    failures: int = Field(description="attempts that ended without a verdict (worker lost, crash)")
    checkpoint_step: int = Field(description="the step a resume starts from (0: no checkpoint)")
    micro_batch_size: int | None = Field(description="rows per forward pass after an out-of-memory retry")
    notice: str = Field(description="what the runtime did on its own (a resume, an out-of-memory retry)")
    run_seconds: float
    time_limit_seconds: int
    heartbeat_at: datetime | None = Field(description="when the worker running it last renewed its lease")
    task: str
    method: str
    dataset: int
    eval_dataset: int | None
    base_model: int
    text_column: str
    label_column: str
    input_column: str
    messages_column: str
    template: str
    params: dict[str, Any]
    method_params: dict[str, Any]
    start_from: int | None
    start_mode: str
    progress: Progress
    metrics: dict[str, Any]
    error: JobError | None
    adapter_url: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


def _positions(jobs) -> dict[int, int]:
    """Queue places for a page of jobs: one query, and none when nothing shown is queued."""
    return selectors.queue_positions() if any(job.status == Job.Status.QUEUED for job in jobs) else {}


def _job_out(job: Job, positions: dict[int, int] | None = None) -> dict:
    if positions is None:
        positions = _positions([job])
    return {
        "id": job.pk, "name": job.name, "status": job.status, "queue_position": positions.get(job.pk),
        "priority": Job.Priority(job.priority).label.lower(), "attempt": job.attempt, "failures": job.failures,
        "checkpoint_step": job.checkpoint_step if job.checkpoint_id else 0, "micro_batch_size": job.micro_batch_size,
        "notice": job.notice, "run_seconds": job.run_seconds, "heartbeat_at": job.heartbeat_at,
        "time_limit_seconds": job.time_limit_seconds or settings.JOB_TIME_LIMIT_SECONDS,
        "task": job.task, "method": job.method,
        "dataset": job.dataset_id, "eval_dataset": job.eval_dataset_id, "base_model": job.base_model_id,
        "text_column": job.text_column, "label_column": job.label_column, "input_column": job.input_column,
        "messages_column": job.messages_column, "template": job.template, "params": job.params,
        "method_params": job.method_params, "start_from": job.start_from_id, "start_mode": job.start_mode,
        "progress": {**selectors.job_progress(job), "loss": job.last_loss}, "metrics": job.metrics,
        "error": {"kind": job.error_kind, "message": job.error_message} if job.error_kind else None,
        "adapter_url": reverse("api:job_adapter", args=[job.pk]) if job.status == Job.Status.SUCCEEDED else None,
        "created_at": job.created_at, "started_at": job.started_at, "finished_at": job.finished_at,
    }


@api.post("/datasets", response={201: DatasetOut, 400: DatasetErrors, 413: Detail})
def dataset_upload(request, file: File[UploadedFile] = None, name: Form[str] = "", text_column: Form[str] = "",
                   label_column: Form[str] = ""):
    team = require(request.actor, request.actor.team, Role.MEMBER).team
    if refused := getattr(request, "upload_refused", None):
        return Status(413, {"detail": refused})
    if file is None:
        return Status(400, {"detail": "send the data as a multipart form field named 'file'", "errors": []})
    try:
        with uploaded_file_path(file) as path:
            dataset = services.dataset_create(team=team, user=request.user, name=name, path=path,
                                              filename=file.name or "upload", text_column=text_column,
                                              label_column=label_column)
    except UploadTooLarge as exc:
        return Status(413, {"detail": str(exc)})
    except ValidationFailed as exc:
        return Status(400, {"detail": exc.message, "errors": exc.errors})
    return Status(201, dataset)


@api.get("/datasets", response=list[DatasetOut])
def dataset_list(request):
    return selectors.dataset_list(actor=request.actor, with_warnings=True)


@api.get("/datasets/{dataset_id}", response=DatasetDetail)
def dataset_detail(request, dataset_id: int):
    return selectors.dataset_get(actor=request.actor, dataset_id=dataset_id)


class TokenStatsOut(Schema):
    status: Literal["counting", "done", "failed"]
    rows: int | None = None
    p50: int | None = None
    p95: int | None = None
    max: int | None = None
    max_length: int | None = None
    truncated_rows: int | None = None
    truncated_share: float | None = None
    warning: str | None = Field(None, description="set when more than 5% of the rows would be cut")
    sft: dict[str, Any] | None = Field(None, description="SFT only: rejected_count and rejected rows [{row, message}], "
                                       "masked_count and masked_rows (answers the max length cuts away entirely), "
                                       "needed_length (the max length that keeps every answer)")
    error: str | None = None


@api.get("/datasets/{dataset_id}/token-stats", response={200: TokenStatsOut, 202: TokenStatsOut, 400: Detail})
def dataset_token_stats(request, dataset_id: int, base_model: int, column: str = "", max_length: int = 128,
                        task: str = "text-classification", label_column: str = "", input_column: str = "",
                        messages_column: str = "", template: str = ""):
    """Token lengths of a column under a base model's tokenizer (p50, p95, max) and how many rows `max_length`
    cuts. With task=sft: of whole examples as the template builds them from column (the prompt), label_column
    (the response), input_column or messages_column, plus the rows that cannot be read and those whose answer
    the max length cuts away. Counted once by a worker: 202 with status "counting" until then; ask again."""
    dataset = selectors.dataset_get(actor=request.actor, dataset_id=dataset_id)
    model = selectors.base_model_get(actor=request.actor, model_id=base_model)
    sft = (services.sft_options(column, label_column, input_column, messages_column, template)
           if task == SFT else None)
    problem = (services.sft_options_error(dataset, sft) if sft else None if column in dataset.columns else
               f"'{column}' is not a column of '{dataset.name}'; its columns are: {', '.join(dataset.columns)}")
    if problem:
        return 400, {"detail": problem}
    if max_length < 1:
        return 400, {"detail": "max_length must be a positive number of tokens"}
    stats = (services.token_stats_request(dataset=dataset, base_model=model, sft=sft) if sft
             else services.token_stats_request(dataset=dataset, base_model=model, column=column))
    summary = selectors.token_stats_summary(stats, max_length)
    if summary is None:
        return 202, {"status": "counting"}
    if "error" in summary:
        return 200, {"status": "failed", "error": summary["error"]}
    return 200, {"status": "done", **summary}


@api.get("/models", response=list[ModelOut])
def model_list(request):
    return selectors.base_model_list(actor=request.actor)


class ModelIn(Schema):
    name: str
    source: str = Field(description="bundled/all-MiniLM-L6-v2, local:<folder under the model root> or a Hugging "
                                    "Face id such as owner/name (safetensors weights only)")
    revision: str = Field("", description="hub models: the 40-character commit id; a branch or tag (empty: the "
                                          "default branch) is resolved to its commit when the hub can be reached")
    description: str = ""


@api.post("/models", response={201: ModelOut, 400: FieldErrors, 403: Detail})
def model_add(request, payload: ModelIn):
    """Offer a base model to your team (admins). Nothing is downloaded; a hub model is pinned to a commit."""
    try:
        model = services.base_model_add(actor=request.actor, name=payload.name, source=payload.source,
                                        revision=payload.revision, description=payload.description)
    except ValidationFailed as exc:
        return Status(400, {"detail": exc.message, "errors": exc.errors})
    return Status(201, model)


@api.delete("/models/{model_id}", response={204: None, 403: Detail, 404: Detail, 409: Detail})
def model_remove(request, model_id: int):
    """Remove one of your team's models (admins); not one offered to every team (403) or one jobs used (409)."""
    actor = require(request.actor, request.actor.team, Role.ADMIN)
    model = selectors.team_base_model_get(team=actor.team, model_id=model_id)
    try:
        services.base_model_remove(actor=actor, model=model)
    except (Forbidden, Conflict) as exc:
        return Status(403 if isinstance(exc, Forbidden) else 409, {"detail": str(exc)})
    return Status(204, None)


@api.get("/methods", response=list[dict[str, Any]])
def method_list(request, model: int | None = None):
    """Every PEFT method with its parameter schema (defaults, bounds, help). With `model` (a base model id),
    each carries `count`: trainable parameters at its defaults on that model, or why it does not fit
    (null until a worker has counted them)."""
    methods = methods_as_json()
    if model is not None:
        profile = selectors.base_model_get(actor=request.actor, model_id=model).profile
        for row in methods:
            row["count"] = profile.get(row["name"])
    return methods


class RecommendationOut(Schema):
    method: str
    reason: str
    rows: int = Field(description="the training rows the recommendation is for")
    benchmark_rows: int | None = Field(None, description="the benchmarked size the choice comes from")
    accuracy: float | None = None
    trainable: int | None = None
    runner_up: str | None = None


@api.get("/methods/recommended", response={200: RecommendationOut, 400: Detail})
def method_recommended(request, task: str = "text-classification", rows: int | None = None,
                       dataset: int | None = None):
    """The method the studio recommends for a task and a number of training rows (`rows`, or the rows of
    `dataset`), chosen from the studio's own benchmark table, with the reason."""
    if task not in CORE_TASKS:
        return 400, {"detail": f"unknown task '{task}'; choose one of: {', '.join(CORE_TASKS)}"}
    if dataset is not None:
        rows = selectors.dataset_get(actor=request.actor, dataset_id=dataset).rows
    if rows is None or rows < 1:
        return 400, {"detail": "give rows (a positive number of training rows) or dataset (a dataset id)"}
    return 200, {**recommend(task, rows).as_json(), "rows": rows}


@api.get("/training-params", response=list[dict[str, Any]])
def training_params(request):
    return schema_as_json(TRAINING_PARAMS)


def _get_or_400(getter, field: str, **kwargs):
    try:
        return getter(**kwargs)
    except Http404:
        raise ValidationFailed("the job has errors; fix the fields named", errors={field: "not found"}) from None


@api.post("/jobs", response={201: JobOut, 400: FieldErrors})
def job_create(request, payload: JobIn):
    team = require(request.actor, request.actor.team, Role.MEMBER).team
    try:
        dataset = _get_or_400(selectors.dataset_get, "dataset", actor=request.actor, dataset_id=payload.dataset)
        eval_dataset = (_get_or_400(selectors.dataset_get, "eval_dataset", actor=request.actor,
                                    dataset_id=payload.eval_dataset) if payload.eval_dataset else None)
        model = _get_or_400(selectors.base_model_get, "base_model", actor=request.actor, model_id=payload.base_model)
        start_from = (_get_or_400(selectors.job_get, "start_from", actor=request.actor, job_id=payload.start_from)
                      if payload.start_from else None)
        job = services.job_create(
            team=team, user=request.user, dataset=dataset, eval_dataset=eval_dataset, base_model=model,
            method=payload.method, task=payload.task, text_column=payload.text_column,
            label_column=payload.label_column, method_params=payload.method_params, params=payload.params,
            name=payload.name, start_from=start_from, start_mode=payload.start_mode,
            input_column=payload.input_column, messages_column=payload.messages_column, template=payload.template,
            priority=Job.Priority[payload.priority.upper()],
            time_limit_seconds=payload.time_limit_minutes * 60 if payload.time_limit_minutes is not None else None)
    except ValidationFailed as exc:
        return Status(400, {"detail": exc.message, "errors": exc.errors})
    return Status(201, _job_out(job))


@api.get("/jobs", response=list[JobOut])
def job_list(request, status: str | None = None, method: str | None = None, dataset: int | None = None,
             task: str | None = None, limit: int = 100):
    """Your team's jobs, newest first, filtered by any of status, method, dataset id and task."""
    jobs = selectors.job_list(actor=request.actor)
    filters = {"status": status, "method": method, "dataset_id": dataset, "task": task}
    jobs = jobs.filter(**{name: value for name, value in filters.items() if value is not None})
    jobs = list(jobs[: max(1, min(limit, 1000))])
    positions = _positions(jobs)
    return [_job_out(job, positions) for job in jobs]


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


@api.get("/jobs/compare", response={200: CompareOut, 400: Detail})
def job_compare(request, ids: str):
    """Jobs side by side (`ids=3,5,8`, at most 8): metrics, efficiency and configuration, with the rows that
    differ marked and the best values named, plus their loss curves. Other teams' ids are left out."""
    try:
        wanted = comparison.parse_ids([ids])
    except ValueError as exc:
        return 400, {"detail": str(exc) if isinstance(exc, comparison.TooManyJobs)
                     else "ids is a comma-separated list of job ids, such as 3,5"}
    result = comparison.job_compare(actor=request.actor, ids=wanted)
    positions = _positions(result["jobs"])
    return 200, {**result, "jobs": [_job_out(job, positions) for job in result["jobs"]]}


@api.get("/datasets/{dataset_id}/leaderboard", response=list[JobOut])
def dataset_leaderboard(request, dataset_id: int,
                        metric: Literal["accuracy", "macro_f1", "eval_loss", "rouge_l", "bleu", "exact_match",
                                        "perplexity"] = "accuracy"):
    """The team's best succeeded jobs trained on this dataset, best first by `metric`."""
    dataset = selectors.dataset_get(actor=request.actor, dataset_id=dataset_id)
    return [_job_out(job, {}) for job in comparison.dataset_leaderboard(actor=request.actor, dataset_id=dataset.pk,
                                                                         metric=metric)]


@api.get("/jobs/{job_id}", response=JobOut)
def job_detail(request, job_id: int):
    return _job_out(selectors.job_get(actor=request.actor, job_id=job_id))


@api.get("/jobs/{job_id}/report", response={200: dict[str, Any], 404: Detail})
def job_report(request, job_id: int):
    report = selectors.job_report(job=selectors.job_get(actor=request.actor, job_id=job_id))
    if report is None:
        return Status(404, {"detail": "this job has no report yet; reports exist once a job succeeds"})
    return report


@api.post("/jobs/{job_id}/cancel", response=JobOut)
def job_cancel(request, job_id: int):
    job = selectors.job_get(actor=request.actor, job_id=job_id)
    require(request.actor, job.team_id, Role.MEMBER)
    return _job_out(runtime.job_cancel(job=job, user=request.user))


@api.post("/jobs/{job_id}/resume", response={200: JobOut, 409: Detail})
def job_resume(request, job_id: int):
    """Queue a failed or cancelled job again; it goes on from its last checkpoint (checkpoint_step)."""
    job = selectors.job_get(actor=request.actor, job_id=job_id)
    require(request.actor, job.team_id, Role.MEMBER)
    try:
        return _job_out(runtime.job_resume(job=job, user=request.user))
    except Conflict as exc:
        return Status(409, {"detail": str(exc)})


@api.get("/jobs/{job_id}/attempts", response=list[Attempt])
def job_attempts(request, job_id: int):
    """Each time a worker took the job: where, from which step, and how it ended."""
    return list(selectors.job_attempts(job=selectors.job_get(actor=request.actor, job_id=job_id)))


class PlaygroundIn(Schema):
    texts: list[str] = Field(description="texts for the job's adapter (at most 32): texts to classify, or the "
                                         "prompts (SFT) or inputs (seq2seq) a generation adapter answers")


class Prediction(Schema):
    label: str
    probabilities: dict[str, float]


class Generation(Schema):
    generation: str


class PlaygroundOut(Schema):
    id: int
    status: Literal["pending", "done", "failed"]
    texts: list[str]
    predictions: list[Prediction] | None = Field(None, description="a text classification job's labels")
    generations: list[Generation] | None = Field(None, description="an SFT or seq2seq job's generated texts")
    error: str | None = None


def _playground_out(run) -> dict:
    result = run.result
    status = "pending" if result is None else ("failed" if "error" in result else "done")
    return {"id": run.pk, "status": status, "texts": run.texts,
            "predictions": (result or {}).get("predictions"), "generations": (result or {}).get("generations"),
            "error": (result or {}).get("error")}


@api.post("/jobs/{job_id}/playground", response={202: PlaygroundOut, 400: FieldErrors})
def playground_create(request, job_id: int, body: PlaygroundIn):
    """Try a succeeded job's adapter: a worker predicts labels, or generates text for an SFT or seq2seq job (the
    web process loads no model). 202 with the run's id; poll GET .../playground/{id} until status is done or
    failed."""
    job = selectors.job_get(actor=request.actor, job_id=job_id)
    require(request.actor, job.team_id, Role.MEMBER)
    try:
        run = services.playground_run_create(job=job, user=request.user, texts=body.texts)
    except ValidationFailed as exc:
        return 400, {"detail": exc.message, "errors": exc.errors}
    return 202, _playground_out(run)


@api.get("/jobs/{job_id}/playground/{run_id}", response=PlaygroundOut)
def playground_get(request, job_id: int, run_id: int):
    job = selectors.job_get(actor=request.actor, job_id=job_id)
    return _playground_out(services.playground_run_refresh(run=selectors.playground_run_get(job=job, run_id=run_id)))


@api.get("/jobs/{job_id}/adapter", response={404: Detail}, url_name="job_adapter")
def job_adapter(request, job_id: int):
    job = selectors.job_get(actor=request.actor, job_id=job_id)
    artifact = selectors.job_artifact(job=job)
    if artifact is None:
        detail = f"job {job.pk} has no adapter (status: {job.status}); adapters exist once a job succeeds"
        return Status(404, {"detail": detail})
    audit_record(team_id=job.team_id, user=request.user, action="adapter.download", target=f"job {job.pk}")
    return artifact_response(artifact)


# --- the team ---------------------------------------------------------------------------------------------


class Quotas(Schema):
    max_concurrent_jobs: int | None
    compute_hours_per_month: float | None
    max_storage_bytes: int | None


class TeamUsage(Schema):
    active_jobs: int
    compute_hours_this_month: float
    storage_bytes: dict[str, int] = Field(description="datasets, adapters, checkpoints")


class TeamOut(Schema):
    id: int
    name: str
    role: str = Field(description="your role: viewer, member, admin or owner")
    quotas: Quotas
    usage: TeamUsage


class MemberOut(Schema):
    username: str
    role: str
    joined_at: datetime


class UsageRow(Schema):
    month: datetime
    member: str | None
    device: str
    jobs: int
    seconds: float


class AuditOut(Schema):
    created_at: datetime
    user: str | None
    action: str
    target: str
    detail: dict[str, Any]


@api.get("/team", response=TeamOut)
def team_detail(request):
    """The team you work in, your role, its quotas and what it uses of them."""
    from jobs import quotas

    actor = require(request.actor, request.actor.team, Role.VIEWER)
    team = actor.team
    return {"id": team.pk, "name": team.name, "role": actor.role,
            "quotas": {name: getattr(team, name) for name in Quotas.model_fields},
            "usage": {"active_jobs": quotas.active_jobs(team.pk),
                      "compute_hours_this_month": round(quotas.compute_seconds_this_month(team.pk) / 3600, 4),
                      "storage_bytes": quotas.storage_used(team.pk)}}


@api.delete("/team", response={204: None, 400: Detail, 409: Detail})
def team_delete(request, confirm: str):
    """Delete this token's team with everything in it (owners). `confirm` must be the team's name; refused
    (409) while a job is queued or running."""
    from jobs.services import team_delete as delete

    owner = require(request.actor, request.actor.team, Role.OWNER)
    try:
        delete(actor=owner, confirm_name=confirm)
    except Refused as exc:
        return Status(409 if isinstance(exc, Conflict) else 400, {"detail": str(exc)})
    return Status(204, None)

@api.get("/team/members", response=list[MemberOut])
def team_members(request):
    team = require(request.actor, request.actor.team, Role.VIEWER).team
    return [{"username": m.user.username, "role": m.role, "joined_at": m.created_at}
            for m in teams_selectors.team_members(team=team)]


class MemberIn(Schema):
    username: str
    role: Literal["viewer", "member", "admin", "owner"] = "member"


@api.post("/team/members", response={201: MemberOut, 400: Detail})
def team_member_add(request, payload: MemberIn):
    """Add someone who has an account (admins; owners for admin and owner roles). No account yet? Invite them:
    POST /team/invitations."""
    from teams.services import member_add

    actor = require(request.actor, request.actor.team, Role.ADMIN)
    try:
        m = member_add(actor=actor, username=payload.username, role=payload.role)
    except Refused as exc:
        return Status(400, {"detail": str(exc)})
    return Status(201, {"username": m.user.username, "role": m.role, "joined_at": m.created_at})


@api.get("/team/usage", response=list[UsageRow])
def team_usage(request):
    """Training time per member, device and month (admins)."""
    from jobs.dashboard import usage_by_member_month

    team = require(request.actor, request.actor.team, Role.ADMIN).team
    return [{"month": r["month"], "member": r["created_by__username"], "device": r["device"], "jobs": r["jobs"],
             "seconds": r["seconds"] or 0} for r in usage_by_member_month(team=team, months=12)]


@api.get("/team/audit", response=list[AuditOut])
def team_audit(request, limit: int = 100):
    """Who did what, newest first (admins)."""
    team = require(request.actor, request.actor.team, Role.ADMIN).team
    entries = teams_selectors.audit_entries(team=team, limit=max(1, min(limit, 1000)))
    return [{"created_at": e.created_at, "user": e.user.username if e.user else None, "action": e.action,
             "target": e.target, "detail": e.detail} for e in entries]


# Tokens and invitations live in their own module; mounted last so every path above keeps its place.
from .api_access import router as _access_router  # noqa: E402

api.add_router("", _access_router)
from .api_webhooks import router as _webhooks_router  # noqa: E402

api.add_router("", _webhooks_router)
