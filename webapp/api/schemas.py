"""Schemas and shapes more than one resource answers with: errors, datasets, models, jobs, members."""

from datetime import datetime
from typing import Any, Literal

from django.conf import settings
from django.urls import reverse
from ninja import Field, Schema

from jobs import selectors
from jobs.models import Job


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
    state: str = Field(
        "ready",
        description="ready; checking (a large upload's rows being checked by a worker: poll this dataset until it "
        "is ready or invalid; `rows` counts the rows read so far); invalid (`stats.errors` says which rows to fix)",
    )
    progress: float | None = Field(None, description="while checking: the share of the file read, 0 to 1")
    warnings: list[dict[str, Any]] = Field(
        [],
        description="what training can live with but you should know: duplicates, conflicting labels, "
        "imbalance, labels too small to split (each with a code, a message and example rows)",
    )

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
    state: str = Field(description="ready; preparing (a bundled model being converted once); failed")
    state_detail: str = Field(description="why preparing failed")


class JobIn(Schema):
    dataset: int
    eval_dataset: int | None = None
    base_model: int
    method: str
    task: str = Field(
        "text-classification",
        description="text-classification, sft, seq2seq or preference (DPO, ORPO or KTO: params.preference_loss)",
    )
    text_column: str = Field(
        "",
        description="the text (classification), prompt (sft; a path such as "
        "instances[0].output may reach into nested JSON) or input (seq2seq) column",
    )
    label_column: str = Field(
        "", description="the label, response (sft), target (seq2seq) or chosen response (preference) column"
    )
    input_column: str = Field(
        "", description="sft: an optional column appended to the prompt; preference: the rejected response column"
    )
    messages_column: str = Field(
        "", description="sft: a column of chat messages [{role, content}], instead of text_column and label_column"
    )
    template: str = Field(
        "",
        description="sft: auto (the tokenizer's chat template, else the one its vocabulary is made for, else alpaca), alpaca, chatml, gemma or plain",
    )
    name: str = ""
    params: dict[str, Any] = Field(
        {},
        description="training parameters (GET /methods lists them); those left out are chosen from the data when "
        "the job is created (the job's `choices` says why)",
    )
    method_params: dict[str, Any] = {}
    start_from: int | None = Field(None, description="a succeeded job of your team whose adapter this job starts from")
    start_mode: Literal["continue", "stack"] = Field(
        "continue",
        description="continue: train that adapter further (its method and parameters are kept); "
        "stack: keep it frozen and train a new adapter of any method on top",
    )
    priority: Literal["low", "normal", "high"] = Field(
        "normal", description="order among your team's queued jobs (teams share workers fairly whatever this says)"
    )
    time_limit_minutes: int | None = Field(
        None,
        description="minutes of training before the job stops as timed out (resumable); default: the studio's limit",
    )
    group_column: str = Field(
        "",
        description="one adapter per value of this column (a user, customer, language), each scored on its rows; "
        "with poly or multitask_prompt_tuning, one adapter with a task per value",
    )
    group_shared: bool = Field(False, description="with group_column: train a shared adapter on all rows first")


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


class CombineIn(Schema):
    parents: list[int] = Field(
        description="2 to 8 succeeded LoRA jobs of your team: one base model, task and label set"
    )
    weights: list[float] = Field(description="one per parent; a negative weight subtracts that adapter")
    combination: Literal["sum", "svd", "linear", "ties", "dare_linear", "dare_ties", "magnitude_prune", "learned"] = (
        Field(
            "sum",
            description="sum: the exact weighted sum (ranks add up); svd: the sum at the largest parent's rank; "
            "linear, ties, dare_*, magnitude_prune: peft's merging rules (parents of one rank); learned: X-LoRA, a "
            "router trained on the first parent's rows mixes the adapters token by token (SFT or preference; weights only pick)",
        )
    )
    density: float | None = Field(None, description="ties, dare_* and magnitude_prune: the share of each change kept")
    eval_dataset: int | None = Field(
        None, description="rows to evaluate the combination and each parent on; default: the first parent's"
    )
    name: str = ""
    priority: Literal["low", "normal", "high"] = "normal"


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
    choices: dict[str, str] = Field(
        description='why each setting left empty got its value ("params.epochs" -> reason); the report adds '
        "those only training could choose (max length from the texts, the pooling)"
    )
    start_from: int | None
    start_mode: str
    group_column: str = ""
    group_shared: bool = False
    task_per_group: bool = Field(False, description="the group column names each row's task in one adapter")
    sweep: int | None = None
    combine: dict[str, Any] | None = Field(
        None, description="a combination job's recipe: parents (job ids), weights, combination, density"
    )
    progress: Progress
    metrics: dict[str, Any]
    error: JobError | None
    adapter_url: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


def queue_places(jobs) -> dict[int, int]:
    """Queue places for a page of jobs: one query, and none when nothing shown is queued."""
    return selectors.queue_positions(job.pk for job in jobs if job.status == Job.Status.QUEUED)


def job_out(job: Job, positions: dict[int, int] | None = None) -> dict:
    if positions is None:
        positions = queue_places([job])
    return {
        "id": job.pk,
        "name": job.name,
        "status": job.status,
        "queue_position": positions.get(job.pk),
        "priority": Job.Priority(job.priority).label.lower(),
        "attempt": job.attempt,
        "failures": job.failures,
        "checkpoint_step": job.checkpoint_step if job.checkpoint_id else 0,
        "combine": job.combine,
        "group_column": job.group_column,
        "group_shared": job.group_shared,
        "task_per_group": job.task_per_group,
        "sweep": job.sweep_id,
        "micro_batch_size": job.micro_batch_size,
        "notice": job.notice,
        "run_seconds": job.run_seconds,
        "heartbeat_at": job.heartbeat_at,
        "time_limit_seconds": job.time_limit_seconds or settings.JOB_TIME_LIMIT_SECONDS,
        "task": job.task,
        "method": job.method,
        "dataset": job.dataset_id,
        "eval_dataset": job.eval_dataset_id,
        "base_model": job.base_model_id,
        "text_column": job.text_column,
        "label_column": job.label_column,
        "input_column": job.input_column,
        "messages_column": job.messages_column,
        "template": job.template,
        "params": job.params,
        "method_params": job.method_params,
        "choices": job.choices or {},
        "start_from": job.start_from_id,
        "start_mode": job.start_mode,
        "progress": {**selectors.job_progress(job), "loss": job.last_loss},
        "metrics": job.metrics,
        "error": {"kind": job.error_kind, "message": job.error_message} if job.error_kind else None,
        "adapter_url": reverse("api:job_adapter", args=[job.pk]) if job.status == Job.Status.SUCCEEDED else None,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
    }


class MemberOut(Schema):
    username: str
    role: str
    joined_at: datetime
