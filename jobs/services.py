"""Writes. Views, the API and tasks call these; they hold the rules."""

import hashlib
import json
import logging
import os
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from peftcore.data import inspect_file
from peftcore.formats import DataError, detect_format
from peftcore.methods import UnknownMethodError, all_methods, get_method
from peftcore.models import (BUNDLED_MODEL_ID, LOCAL_PREFIX, ModelRefError, is_hub_id, pin_hub_revision,
                            resolve_model)
from peftcore.schema import validate_params
from peftcore.start_from import MODES as START_MODES
from peftcore.sft import AUTO as AUTO_TEMPLATE
from peftcore.sft import check_template, path_root
from peftcore.start_from import start_refusal
from peftcore.tasks import COLUMN_ROLES, SFT, TASK_NAMES, TEXT_CLASSIFICATION, architecture_refusal
from peftcore.training_params import TRAINING_PARAMS

from teams.audit import audit_record
from teams.models import Membership, Team
from teams.permissions import require

from . import quotas
from .models import (BaseModel, Dataset, EvalReport, Job, PlaygroundRun, TokenStats,
                     TrainableCount)
from .runtime import job_enqueue_on_commit
from .storage import blob_create_from_file

log = logging.getLogger(__name__)

TASKS = TASK_NAMES


class ValidationFailed(Exception):
    """Input a user must fix. `errors` maps a field name (or "__all__") to a message, or lists row errors."""

    def __init__(self, message: str, *, errors=None):
        super().__init__(message)
        self.message = message
        self.errors = errors if errors is not None else {}


# --- datasets -------------------------------------------------------------------------------------------


def dataset_create(*, team, user, name: str, path: str | os.PathLike, filename: str,
                   text_column: str | None = None, label_column: str | None = None) -> Dataset:
    """Inspect an uploaded file and store it; a file with errors stores nothing."""
    # Postgres refuses NUL in text; refused here, before the blob is written, so none is left behind.
    if "\x00" in f"{name}{filename}{text_column or ''}{label_column or ''}":
        message = "the name, the file name and the column names cannot contain NUL (\\u0000) characters"
        raise ValidationFailed(message, errors=[{"row": None, "message": message}])
    try:
        fmt = detect_format(filename)  # the user's file name: the temporary file's name may differ
    except DataError as exc:
        raise ValidationFailed(f"'{filename}': unsupported file type; {exc}",
                               errors=[{"row": None, "message": str(exc)}]) from None
    report = inspect_file(path, fmt=fmt, text_column=text_column or None, label_column=label_column or None)
    if not report["ok"]:
        count = report.get("error_count", len(report["errors"]))
        raise ValidationFailed(f"'{filename}' has {count} error(s); nothing was stored. Fix them and upload again.",
                               errors=report["errors"])
    size = os.path.getsize(path)
    if error := quotas.storage_error(team, size):  # before writing: refuse early, store nothing
        raise ValidationFailed(error, errors={"quota": error})
    with open(path, "rb") as fh:
        blob = blob_create_from_file(fh)
    stats = {"empty_values": report.get("empty_values", {}), "warnings": report.get("warnings", [])}
    if report.get("labels"):
        stats["labels"] = report["labels"]
        stats["label_column"] = label_column
    if text_column:
        stats["text_column"] = text_column
    with transaction.atomic():
        locked = Team.objects.select_for_update().filter(pk=team.pk).first()  # again, now uploads are serialised
        if locked is None:  # the team was deleted while the bytes were stored
            error = "this team has been deleted; nothing was stored"
            dataset = None
        elif error := quotas.storage_error(locked, blob.size):
            dataset = None
        else:
            dataset = Dataset.objects.create(
                team=team, created_by=user, name=(name or Path(filename).stem)[:200], filename=filename[:255],
                format=report["format"], blob=blob, size_bytes=blob.size, sha256=blob.sha256,
                rows=report["rows"], columns=report["columns"], preview=report["preview"], stats=stats,
            )
            audit_record(team_id=team.pk, user=user, action="dataset.upload", target=f"dataset {dataset.pk}",
                         name=dataset.name, rows=dataset.rows, bytes=dataset.size_bytes)
    if dataset is None:
        blob.delete()
        raise ValidationFailed(error, errors={"quota": error})
    return dataset


# --- base models ----------------------------------------------------------------------------------------


def base_model_register(*, name: str, source: str, team=None, revision: str = "", description: str = "") -> BaseModel:
    obj, created = BaseModel.objects.get_or_create(
        source=source, revision=revision, team=team, defaults={"name": name, "description": description})
    if created or not obj.profile:
        transaction.on_commit(lambda: base_model_enqueue_profile(model_id=obj.pk), robust=True)
    return obj


def base_model_enqueue_profile(*, model_id: int) -> None:
    from .tasks import profile_base_model

    profile_base_model.delay(model_id)


def base_model_set_profile(*, model: BaseModel, rows: list[dict]) -> BaseModel:
    """Store each method's trainable-parameter count (or why it does not fit) from `peftcore methods --json`."""
    model.profile = {row["name"]: row["count"] if row.get("count") else {"refused": row.get("refused", "")}
                     for row in rows}
    model.save(update_fields=["profile"])
    return model


def base_model_register_bundled() -> BaseModel:
    return base_model_register(
        name="all-MiniLM-L6-v2 (bundled)", source=BUNDLED_MODEL_ID,
        description="22M-parameter BERT encoder shipped with the studio; fast on a CPU.")


HUB_LOOKUP_SECONDS = 10  # how long adding a hub model waits for the hub to name the commit


class BaseModelRemoveRefused(Exception):
    """`shared`: the model is offered to every team, which no team may remove (403); else jobs use it (409)."""

    def __init__(self, message: str, *, shared: bool = False):
        super().__init__(message)
        self.shared = shared


def base_model_add(*, actor, name: str, source: str, revision: str = "", description: str = "") -> BaseModel:
    """A team admin offers a base model to their team. The reference is checked without downloading anything
    (the web process has no torch); a hub model is pinned to a commit id, so every job trains on the same
    weights even when the hub's branch moves on."""
    require(actor, actor.team, Membership.Role.ADMIN)
    fields = {"name": name, "source": source, "revision": revision, "description": description}
    if nul := {field: "remove the NUL (\\u0000) character" for field, value in fields.items() if "\x00" in value}:
        raise ValidationFailed("the model was not added; fix the fields named", errors=nul)  # Postgres refuses it
    name, source, revision, description = (value.strip() for value in fields.values())
    errors = {}
    if not name or len(name) > 200:
        errors["name"] = "give the model a name of at most 200 characters"
    if len(description) > 300:
        errors["description"] = "keep the description to 300 characters"
    if source == BUNDLED_MODEL_ID or source.startswith(LOCAL_PREFIX):
        if revision:
            errors["revision"] = "only Hugging Face models have a revision; leave it empty"
        try:
            resolve_model(source, model_root=settings.MODEL_ROOT)  # a folder check only: nothing is loaded
        except ModelRefError as exc:
            errors["source"] = str(exc)
    elif is_hub_id(source):
        try:
            revision = pin_hub_revision(source, revision, timeout=HUB_LOOKUP_SECONDS)
        except ModelRefError as exc:
            errors["revision"] = str(exc)
    else:
        errors["source"] = (f"{source!r} is not a model reference; use {BUNDLED_MODEL_ID}, local:<folder under "
                            "the model root> or a Hugging Face id such as owner/name")
    if not errors and (same := BaseModel.objects.filter(Q(team=actor.team) | Q(team__isnull=True), source=source,
                                                        revision=revision).first()):
        errors["source"] = (f"{source}{'@' + revision[:12] if revision else ''} is already offered"
                            f"{' to every team' if same.team_id is None else ''} as '{same.name}'")
    if errors:
        raise ValidationFailed("the model was not added; fix the fields named", errors=errors)
    try:
        with transaction.atomic():
            model = BaseModel.objects.create(team=actor.team, name=name, source=source, revision=revision,
                                             description=description)
            audit_record(team_id=actor.team_id, user=actor.user, action="model.add", target=f"model {model.pk}",
                         name=name, source=source, revision=revision)
    except IntegrityError:  # another admin added the same model a moment ago
        raise ValidationFailed("the model was not added; fix the fields named",
                               errors={"source": f"{source} is already offered to {actor.team.name}"}) from None
    transaction.on_commit(lambda: base_model_enqueue_profile(model_id=model.pk), robust=True)
    return model


def base_model_remove(*, actor, model: BaseModel) -> None:
    """Remove one of the team's own models; one that jobs were trained on stays (their reports, adapters and
    resumes refer to it)."""
    require(actor, actor.team, Membership.Role.ADMIN)
    if model.team_id is None:
        raise BaseModelRemoveRefused(
            f"'{model.name}' is offered to every team by the studio's operator; a team cannot remove it",
            shared=True)
    if model.team_id != actor.team_id:
        raise ValueError("a team removes only its own models; look the model up through the team's selector")
    with transaction.atomic():
        BaseModel.objects.select_for_update().filter(pk=model.pk).first()  # a job created meanwhile waits
        used = Job.objects.filter(base_model=model).count()
        if used:
            raise BaseModelRemoveRefused(
                f"'{model.name}' cannot be removed: {used} job(s) of {actor.team.name} were trained on it, and their "
                "results, adapters and resumes need it")
        audit_record(team_id=actor.team_id, user=actor.user, action="model.remove", target=f"model {model.pk}",
                     name=model.name, source=model.source, revision=model.revision)
        model.delete()


def trainable_count_request(*, base_model: BaseModel, method: str, params: dict) -> TrainableCount:
    """The stored count for these (validated) parameters, or a pending one with a count task on its way."""
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":"))
    key = hashlib.sha256(canonical.encode()).hexdigest()
    count, created = TrainableCount.objects.get_or_create(
        base_model=base_model, method=method, params_key=key, defaults={"params": params})
    _ask_worker(count, created, settings.COUNT_RETRY_SECONDS, lambda: trainable_count_enqueue(count_id=count.pk))
    return count


def _ask_worker(row, created: bool, retry_seconds: float, enqueue) -> None:
    """Queue the task that fills row.result once committed: for a new row, and again for one still pending after
    retry_seconds (its message was lost, say to a broker restart)."""
    stale = (row.result is None and not created
             and timezone.now() - row.requested_at > timedelta(seconds=retry_seconds))
    if stale:
        type(row).objects.filter(pk=row.pk).update(requested_at=timezone.now())
    if created or stale:
        transaction.on_commit(enqueue, robust=True)


def trainable_count_enqueue(*, count_id: int) -> None:
    from .tasks import count_trainable

    count_trainable.delay(count_id)


def trainable_count_set(*, count: TrainableCount, result: dict) -> None:
    TrainableCount.objects.filter(pk=count.pk).update(result=result)


def sft_options(text_column: str, label_column: str, input_column: str = "", messages_column: str = "",
                template: str = "") -> dict:
    """The SFT columns and template as the pre-flight count keys them (unused columns left out)."""
    if messages_column:
        return {"messages": messages_column, "template": template or AUTO_TEMPLATE}
    return {"prompt": text_column, "response": label_column, "input": input_column or None,
            "template": template or AUTO_TEMPLATE}


def sft_options_error(dataset: Dataset, options: dict) -> str | None:
    """Why SFT options cannot be counted on a dataset (a column it lacks, no columns named), or None."""
    named = [v for k, v in options.items() if k != "template" and v]
    missing = [v for v in named if path_root(v) not in dataset.columns]
    if missing:
        return f"'{missing[0]}' is not a column of '{dataset.name}'; its columns are: {', '.join(dataset.columns)}"
    if not (options.get("messages") or (options.get("prompt") and options.get("response"))):
        return "name the prompt and response columns, or a messages column"
    return None


def _sft_key(options: dict) -> str:
    return "sft:" + hashlib.sha256(json.dumps(options, sort_keys=True).encode()).hexdigest()[:40]


def token_stats_request(*, dataset: Dataset, base_model: BaseModel, column: str = "",
                        sft: dict | None = None) -> TokenStats:
    """The stored token lengths of a dataset column (or, with sft options, of SFT examples as the template builds
    them) under a model's tokenizer, or a pending row with a task on its way (asked again when a pending one is
    older than TOKEN_COUNT_RETRY_SECONDS: its message was lost)."""
    if sft:
        column = _sft_key(sft)
    stats, created = TokenStats.objects.get_or_create(dataset=dataset, base_model=base_model, column=column,
                                                      defaults={"options": sft or {}})
    _ask_worker(stats, created, settings.TOKEN_COUNT_RETRY_SECONDS, lambda: token_stats_enqueue(stats_id=stats.pk))
    return stats


def token_stats_enqueue(*, stats_id: int) -> None:
    from .tasks import count_tokens

    count_tokens.delay(stats_id)


def token_stats_set(*, stats: TokenStats, result: dict) -> None:
    TokenStats.objects.filter(pk=stats.pk).update(result=result)


def sft_preflight_errors(*, dataset: Dataset, base_model: BaseModel, max_length: int, options: dict) -> dict:
    """Errors from the SFT pre-flight count when a worker has made it (training checks the same again): rows that
    cannot be read, and rows whose whole answer this max length would cut away."""
    from peftcore.token_lengths import sft_check

    stats = TokenStats.objects.filter(dataset=dataset, base_model=base_model, column=_sft_key(options)).first()
    if stats is None or not stats.result or "error" in stats.result:
        return {}
    check = sft_check(stats.result, max_length)
    errors = {}
    if check["rejected_count"]:
        first = check["rejected"][0]
        field = "messages_column" if options.get("messages") else "label_column"
        errors[field] = (f"{check['rejected_count']} row(s) cannot be used with these columns (row {first['row']}: "
                         f"{first['message']}); fix those rows or choose other columns")
    if check["masked_count"]:
        errors["params.max_length"] = (
            f"{check['masked_count']} row(s) (row {', '.join(map(str, check['masked_rows']))}) have prompts of "
            f"{max_length} tokens or more, so nothing of their answer is left to learn; raise the maximum length "
            f"to {check['needed_length']} or shorten those prompts")
    return errors


# --- jobs -----------------------------------------------------------------------------------------------


def _check_column(errors: dict, field: str, column: str, dataset: Dataset, what: str, *, paths: bool = False) -> None:
    """A column of the dataset; with paths, a path into one (instances[0].output) whose top-level column exists."""
    root = path_root(column) if paths else column
    if not column:
        errors[field] = f"choose the {what} column"
    elif root not in dataset.columns:
        errors[field] = f"'{root}' is not a column of '{dataset.name}'; its columns are: {', '.join(dataset.columns)}"
    elif root == column and (empty := dataset.stats.get("empty_values", {}).get(column, 0)):
        errors[field] = f"column '{column}' of '{dataset.name}' has {empty} empty value(s); fill them or pick another column"


def _column_errors(*, task: str, dataset: Dataset, eval_dataset: Dataset | None, columns: dict) -> dict[str, str]:
    """The task's columns checked against the dataset (and the evaluation dataset): field -> message."""
    errors: dict[str, str] = {}
    first, second = (role.split(" ")[0].lower() for role in COLUMN_ROLES.get(task, ("Text", "Label")))
    sft = task == SFT
    if sft and columns.get("messages_column"):
        wanted = {"messages_column": "messages"}
    else:
        wanted = {"text_column": first, "label_column": second}
        if sft and columns.get("input_column"):
            wanted["input_column"] = "input"
    for field, what in wanted.items():
        _check_column(errors, field, columns.get(field) or "", dataset, what, paths=sft)
    if "label_column" in wanted and columns.get("text_column") and columns["text_column"] == columns.get("label_column"):
        errors["label_column"] = f"the {second} column must differ from the {first} column"
    if sft:
        try:
            check_template(columns.get("template") or AUTO_TEMPLATE)
        except ValueError as exc:
            errors["template"] = str(exc)
    if eval_dataset is not None and eval_dataset.pk != dataset.pk:
        for field, what in wanted.items():
            column = path_root(columns.get(field) or "") if sft else columns.get(field)
            if column and column not in eval_dataset.columns:
                errors["eval_dataset"] = (f"the evaluation dataset '{eval_dataset.name}' has no {what} column "
                                          f"'{column}'; its columns are: {', '.join(eval_dataset.columns)}")
    return errors


def _model_config(base_model: BaseModel) -> dict | None:
    """config.json of a base model on this machine (the bundled one, or under the model root); None for a hub
    model not yet downloaded (its worker checks it)."""
    if base_model.source != BUNDLED_MODEL_ID and not base_model.source.startswith(LOCAL_PREFIX):
        return None
    try:
        folder = resolve_model(base_model.source, model_root=settings.MODEL_ROOT)
        return json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (ModelRefError, OSError, ValueError):
        return None


def job_validate(*, dataset: Dataset, eval_dataset: Dataset | None, base_model: BaseModel, method: str,
                 task: str, text_column: str, label_column: str, method_params: dict | None,
                 params: dict | None, input_column: str = "", messages_column: str = "",
                 template: str = "") -> tuple[dict, dict]:
    """Check a job against its dataset, model and method; return (method_params, params) resolved."""
    errors: dict[str, str] = {}
    if task not in TASKS:
        errors["task"] = f"unknown task '{task}'; choose one of: {', '.join(TASKS)}"
    try:
        spec = get_method(method)
    except UnknownMethodError as exc:
        errors["method"] = str(exc)
        spec = None
    if spec and task in TASKS and task not in spec.tasks:
        errors["method"] = f"{spec.label} does not support {task}; it supports: {', '.join(spec.tasks)}"
    if eval_dataset is not None and eval_dataset.pk == dataset.pk:
        errors["eval_dataset"] = "evaluate on a different dataset, or leave it empty to hold out a fraction of the rows"
    errors.update(_column_errors(task=task, dataset=dataset, eval_dataset=eval_dataset, columns={
        "text_column": text_column, "label_column": label_column, "input_column": input_column,
        "messages_column": messages_column, "template": template}))
    if task == TEXT_CLASSIFICATION:
        labels = dataset.stats.get("labels") if dataset.stats.get("label_column") == label_column else None
        if labels is not None and len(labels) < 2:
            errors["label_column"] = f"column '{label_column}' holds a single label; classification needs at least two"
    config = _model_config(base_model) if task in TASKS else None
    if config is not None:
        reason = architecture_refusal(config, task) or (spec.supports(config.get("model_type", ""), task) if spec else None)
        if reason:
            errors["base_model"] = reason
    clean_method, method_errors = validate_params(spec.params, method_params) if spec else ({}, {})
    clean_params, param_errors = validate_params(TRAINING_PARAMS, params)
    errors.update({f"method_params.{k}": v for k, v in method_errors.items()})
    errors.update({f"params.{k}": v for k, v in param_errors.items()})
    if task == SFT and not errors:
        errors.update(sft_preflight_errors(dataset=dataset, base_model=base_model, max_length=clean_params["max_length"],
                                           options=sft_options(text_column, label_column, input_column,
                                                               messages_column, template)))
    if errors:
        raise ValidationFailed("the job has errors; fix the fields named", errors=errors)
    return clean_method, clean_params


METHOD_NAMES = frozenset(m.name for m in all_methods())


def _start_errors(*, start_from: Job, start_mode: str, base_model: BaseModel, method: str, task: str,
                  dataset: Dataset, label_column: str) -> dict[str, str]:
    """Why a job cannot start from start_from's adapter, per field (empty when it can)."""
    if start_mode not in START_MODES:
        return {"start_mode": f"choose one of: {', '.join(START_MODES)}"}
    if start_from.status != Job.Status.SUCCEEDED:
        return {"start_from": f"job #{start_from.pk} has not succeeded, so it has no adapter to start from"}
    if start_from.base_model_id != base_model.pk:
        return {"base_model": f"job #{start_from.pk} was trained on {start_from.base_model.name}; an adapter only "
                              "fits the base model it was trained on"}
    if start_from.task != task:
        return {"task": f"job #{start_from.pk} was trained for {start_from.task}"}
    reason = start_refusal(start_mode, start_from.method, method) if method in METHOD_NAMES else None
    if reason:
        return {"method": reason}
    known = EvalReport.objects.filter(job_id=start_from.pk).values_list("data__labels", flat=True).first()
    labels = dataset.stats.get("labels") if dataset.stats.get("label_column") == label_column else None
    unknown = [str(v) for v in (labels or []) if known and str(v) not in known]
    if unknown:
        return {"start_from": f"job #{start_from.pk}'s adapter knows the labels {', '.join(known)}; this dataset "
                              f"also has {', '.join(unknown[:5])}"}
    return {}


def _runtime_errors(*, priority, time_limit_seconds) -> dict[str, str]:
    errors = {}
    if priority not in Job.Priority.values:
        errors["priority"] = f"priority must be one of {', '.join(map(str, Job.Priority.values))} (low, normal, high)"
    if time_limit_seconds is not None:
        low, high = settings.JOB_LEASE_SECONDS, settings.JOB_TIME_LIMIT_MAX_SECONDS
        if isinstance(time_limit_seconds, bool) or not isinstance(time_limit_seconds, int) \
                or not low < time_limit_seconds <= high:
            errors["time_limit"] = (f"the time limit must be more than {low // 60 or 1} minute(s) and at most "
                                    f"{high // 60} minutes")
    return errors


def job_create(*, team, user, dataset: Dataset, base_model: BaseModel, method: str, text_column: str = "",
               label_column: str = "", task: str = "text-classification", eval_dataset: Dataset | None = None,
               method_params: dict | None = None, params: dict | None = None, name: str = "",
               start_from: Job | None = None, start_mode: str = "", input_column: str = "",
               messages_column: str = "", template: str = "", priority: int = Job.Priority.NORMAL,
               time_limit_seconds: int | None = None) -> Job:
    # Everything a job uses belongs to the job's own team (or, for base models, to every team).
    foreign = {field: "not found" for field, obj in (("dataset", dataset), ("eval_dataset", eval_dataset),
                                                     ("start_from", start_from))
               if obj is not None and obj.team_id != team.pk}
    if base_model.team_id not in (None, team.pk):
        foreign["base_model"] = "not found"
    if foreign:
        raise ValidationFailed("the job has errors; fix the fields named", errors=foreign)
    runtime_errors = _runtime_errors(priority=priority, time_limit_seconds=time_limit_seconds)
    if runtime_errors:
        raise ValidationFailed("the job has errors; fix the fields named", errors=runtime_errors)
    if start_from is not None:
        start_mode = start_mode or "continue"
        errors = _start_errors(start_from=start_from, start_mode=start_mode, base_model=base_model, method=method,
                               task=task, dataset=dataset, label_column=label_column)
        if errors:
            raise ValidationFailed("the job has errors; fix the fields named", errors=errors)
        if start_mode == "continue":
            method_params = start_from.method_params  # the adapter's shape is fixed by what it was trained with
    else:
        start_mode = ""
    clean_method, clean_params = job_validate(
        dataset=dataset, eval_dataset=eval_dataset, base_model=base_model, method=method, task=task,
        text_column=text_column, label_column=label_column, method_params=method_params, params=params,
        input_column=input_column, messages_column=messages_column, template=template)
    if task != SFT:
        input_column = messages_column = template = ""
    elif messages_column:
        text_column = label_column = input_column = ""
    with transaction.atomic():
        locked = Team.objects.select_for_update().filter(pk=team.pk).first()  # concurrent submissions queue here
        if locked is None:
            raise ValidationFailed("this team has been deleted", errors={"team": "deleted"})
        if error := quotas.job_error(locked):
            raise ValidationFailed(error, errors={"quota": error})
        job = Job.objects.create(
            team=team, created_by=user, name=name[:200] or f"{method} on {dataset.name}", dataset=dataset,
            eval_dataset=eval_dataset, base_model=base_model, task=task, method=method,
            method_params=clean_method, params=clean_params, text_column=text_column, label_column=label_column,
            input_column=input_column, messages_column=messages_column, template=template,
            start_from=start_from, start_mode=start_mode, priority=priority, time_limit_seconds=time_limit_seconds)
        audit_record(team_id=team.pk, user=user, action="job.create", target=f"job {job.pk}", method=method,
                     task=task, dataset=dataset.pk)
        job_enqueue_on_commit(job.pk)
    return job


# --- playground -----------------------------------------------------------------------------------------

PLAYGROUND_MAX_TEXTS = 32
PLAYGROUND_MAX_CHARS = 5000


def playground_run_create(*, job: Job, user, texts: list[str]) -> PlaygroundRun:
    """Queue texts to try on a succeeded job's adapter; a worker predicts (the web process loads no model)."""
    texts = [t for t in (str(t) for t in texts) if t.strip()]
    if job.status != Job.Status.SUCCEEDED:
        raise ValidationFailed(f"job #{job.pk} is {job.status}; only a succeeded job has an adapter to try",
                               errors={"job": "not succeeded"})
    if not texts:
        raise ValidationFailed("type a text to try", errors={"texts": "type a text to try"})
    if len(texts) > PLAYGROUND_MAX_TEXTS:
        raise ValidationFailed(f"at most {PLAYGROUND_MAX_TEXTS} texts at a time",
                               errors={"texts": f"at most {PLAYGROUND_MAX_TEXTS} texts at a time"})
    long = [i + 1 for i, t in enumerate(texts) if len(t) > PLAYGROUND_MAX_CHARS]
    if long:
        message = f"text {long[0]} is longer than {PLAYGROUND_MAX_CHARS:,} characters"
        raise ValidationFailed(message, errors={"texts": message})
    run = PlaygroundRun.objects.create(job=job, created_by=user, texts=texts)
    transaction.on_commit(lambda: playground_enqueue(run_id=run.pk), robust=True)
    return run


def playground_run_refresh(*, run: PlaygroundRun) -> PlaygroundRun:
    """Ask again for a run still pending after PLAYGROUND_RETRY_SECONDS (its message was lost)."""
    _ask_worker(run, False, settings.PLAYGROUND_RETRY_SECONDS, lambda: playground_enqueue(run_id=run.pk))
    return run


def playground_enqueue(*, run_id: int) -> None:
    from .tasks import playground_predict

    playground_predict.delay(run_id)


def playground_run_set(*, run: PlaygroundRun, result: dict) -> None:
    PlaygroundRun.objects.filter(pk=run.pk).update(result=result)


# --- deleting a team ---------------------------------------------------------------------------------------


class TeamDeleteRefused(Exception):
    pass


class TeamBusy(TeamDeleteRefused):
    """Jobs of the team are queued or running."""


def team_delete(*, actor, confirm_name: str) -> None:
    """Delete the actor's team with everything in it: members, datasets, jobs, adapters, reports, models,
    tokens, invitations and their stored bytes. Owners only (the caller checks the role); refused while a job of
    the team is queued or running, and unless the team's name is typed back."""
    from .models import Artifact, Blob

    team = actor.team
    team_id = team.pk
    if confirm_name.strip() != team.name:
        raise TeamDeleteRefused(f"type the team's name, {team.name}, to confirm deleting it")
    with transaction.atomic():
        Team.objects.select_for_update().get(pk=team.pk)  # job_create locks this row too: no job slips in
        active = Job.objects.filter(team=team, status__in=[Job.Status.QUEUED, Job.Status.RUNNING]).count()
        if active:
            raise TeamBusy(f"{team.name} has {active} queued or running job(s); cancel them first")
        # Blobs are shared by reference (PROTECT), so the rows pointing at them go first, then the bytes.
        blob_ids = {*Dataset.objects.filter(team=team).values_list("blob_id", flat=True),
                    *Artifact.objects.filter(job__team=team).values_list("blob_id", flat=True),
                    *Job.objects.filter(team=team, checkpoint__isnull=False).values_list("checkpoint_id", flat=True)}
        # Jobs point at datasets and at each other with PROTECT; unhook and delete them before the team.
        jobs = Job.objects.filter(team=team)
        jobs.exclude(start_from=None).update(start_from=None)
        jobs.delete()
        team.delete()
        Blob.objects.filter(pk__in=blob_ids).delete()
    # The team's audit log goes with it, so the deletion is logged by the server.
    log.warning("team %r (id %s) deleted by %s", team.name, team_id, actor.user.username)
