"""The checks a job passes before it is queued: task, method, columns, model, parameters, starting adapter."""

from django.conf import settings

from peftcore import base_pruning, task_routing
from peftcore.alora import activation_problem
from peftcore.base_pruning import base_pruning_problem
from peftcore.light_peft import pruning_problem
from peftcore.methods import (
    UnknownMethodError,
    all_methods,
    checkpointing_problem,
    get_method,
    virtual_tokens_problem,
)
from peftcore.quantize import quantize_problem
from peftcore.schema import validate_params
from peftcore.sft import AUTO as AUTO_TEMPLATE
from peftcore.sft import check_template, path_root
from peftcore.start_from import MODES as START_MODES
from peftcore.start_from import start_refusal
from peftcore.tasks import Task, UnknownTaskError, get_task
from peftcore.training_params import TRAINING_PARAMS

from ..errors import ValidationFailed
from ..models import BaseModel, Dataset, EvalReport, Job
from .counts import sft_options, sft_preflight_errors, templated
from .job_defaults import job_choices, model_config


def _check_column(errors: dict, field: str, column: str, dataset: Dataset, what: str, *, paths: bool = False) -> None:
    """A column of the dataset; with paths, a path into one (instances[0].output) whose top-level column exists."""
    root = path_root(column) if paths else column
    longest = Job._meta.get_field(field).max_length
    if not column:
        errors[field] = f"choose the {what} column"
    elif len(column) > longest:
        errors[field] = f"the {what} column's name or path is {len(column):,} characters; it can be at most {longest}"
    elif root not in dataset.columns:
        errors[field] = f"'{root}' is not a column of '{dataset.name}'; its columns are: {', '.join(dataset.columns)}"
    elif root == column and (empty := dataset.stats.get("empty_values", {}).get(column, 0)):
        errors[field] = (
            f"column '{column}' of '{dataset.name}' has {empty} empty value(s); fill them or pick another column"
        )


def _column_errors(*, task: Task, dataset: Dataset, eval_dataset: Dataset | None, columns: dict) -> dict[str, str]:
    """The task's columns checked against the dataset (and the evaluation dataset): field -> message."""
    errors: dict[str, str] = {}
    first, second = (role.split(" ")[0].lower() for role in task.column_roles)
    if "messages_column" in task.fields and columns.get("messages_column"):
        wanted = {"messages_column": "messages"}
    else:
        wanted = {"text_column": first, "label_column": second}
        if task.input_role is not None:  # a third column the task needs (preference tuning's rejected answer)
            wanted["input_column"] = task.input_role[0].removesuffix(" column").lower()
        elif "input_column" in task.fields and columns.get("input_column"):
            wanted["input_column"] = "input"
    for field, what in wanted.items():
        _check_column(errors, field, columns.get(field) or "", dataset, what, paths=task.column_paths)
    if (
        "label_column" in wanted
        and columns.get("text_column")
        and columns["text_column"] == columns.get("label_column")
    ):
        errors["label_column"] = f"the {second} column must differ from the {first} column"
    if task.input_role is not None and columns.get("input_column") in (
        columns.get("text_column"),
        columns.get("label_column"),
    ):
        errors["input_column"] = (
            f"the {wanted['input_column']} column must differ from the {first} and {second} columns"
        )
    if "template" in task.fields:
        try:
            check_template(columns.get("template") or AUTO_TEMPLATE)
        except ValueError as exc:
            errors["template"] = str(exc)
    if eval_dataset is not None and eval_dataset.pk != dataset.pk:
        for field, what in wanted.items():
            column = path_root(columns.get(field) or "") if task.column_paths else columns.get(field)
            if column and column not in eval_dataset.columns:
                errors["eval_dataset"] = (
                    f"the evaluation dataset '{eval_dataset.name}' has no {what} column "
                    f"'{column}'; its columns are: {', '.join(eval_dataset.columns)}"
                )
    return errors


def _not_ready(dataset: Dataset) -> str | None:
    """Why a dataset cannot be trained or evaluated on yet, or None."""
    if dataset.state == Dataset.State.CHECKING:
        share = f" ({dataset.progress:.0%} done)" if dataset.progress else ""
        return f"'{dataset.name}' is still being checked row by row{share}; submit again when its page says ready"
    if dataset.state == Dataset.State.INVALID:
        return f"'{dataset.name}' failed its check ({dataset.stats.get('detail', 'see its page')}); upload a fixed file"
    return None


def job_validate(
    *,
    dataset: Dataset,
    eval_dataset: Dataset | None,
    base_model: BaseModel,
    method: str,
    task: str,
    text_column: str,
    label_column: str,
    method_params: dict | None,
    params: dict | None,
    input_column: str = "",
    messages_column: str = "",
    template: str = "",
) -> tuple[dict, dict, dict]:
    """Check a job against its dataset, model and method; return (method_params, params, reasons): every setting
    left empty chosen where it can be now (job_defaults), and why."""
    errors: dict[str, str] = {}
    try:
        task_spec = get_task(task)
    except UnknownTaskError as exc:
        errors["task"] = str(exc)
        task_spec = None
    try:
        spec = get_method(method)
    except UnknownMethodError as exc:
        errors["method"] = str(exc)
        spec = None
    if spec and task_spec and task not in spec.tasks:
        errors["method"] = f"{spec.label} does not support {task}; it supports: {', '.join(spec.tasks)}"
    if base_model.state != BaseModel.State.READY:
        errors["base_model"] = (
            f"{base_model.name} is still being prepared (converted once, a few minutes after the studio starts); "
            "choose it again when the model list shows it ready"
            if base_model.state == BaseModel.State.PREPARING
            else f"{base_model.name} could not be prepared: {base_model.state_detail or 'see the worker log'}"
        )
    if eval_dataset is not None and eval_dataset.pk == dataset.pk:
        errors["eval_dataset"] = "evaluate on a different dataset, or leave it empty to hold out a fraction of the rows"
    for field, chosen in (("dataset", dataset), ("eval_dataset", eval_dataset)):
        if chosen is not None and (unready := _not_ready(chosen)):
            errors[field] = unready
    if task_spec is not None and not errors.keys() & {"dataset", "eval_dataset"}:
        errors.update(
            _column_errors(
                task=task_spec,
                dataset=dataset,
                eval_dataset=eval_dataset,
                columns={
                    "text_column": text_column,
                    "label_column": label_column,
                    "input_column": input_column,
                    "messages_column": messages_column,
                    "template": template,
                },
            )
        )
    if task_spec is not None and task_spec.has_labels:
        labels = dataset.stats.get("labels") if dataset.stats.get("label_column") == label_column else None
        if labels is not None and len(labels) < 2:
            errors["label_column"] = f"column '{label_column}' holds a single label; classification needs at least two"
    config = model_config(base_model) if task_spec is not None else None
    if config is not None:
        reason = task_spec.architecture_refusal(config) or (
            spec.supports(config.get("model_type", ""), task) if spec else None
        )
        if reason:
            errors["base_model"] = reason
    clean_method, method_errors = validate_params(spec.params, method_params) if spec else ({}, {})
    clean_params, param_errors = validate_params(TRAINING_PARAMS, params)
    errors.update({f"method_params.{k}": v for k, v in method_errors.items()})
    errors.update({f"params.{k}": v for k, v in param_errors.items()})
    if spec is not None and not param_errors and (problem := quantize_problem(spec, clean_params)):
        errors["params.quantize"] = problem
    if spec is not None and not param_errors and (problem := checkpointing_problem(spec, clean_params)):
        errors["params.gradient_checkpointing"] = problem
    if spec is not None and not param_errors and (problem := pruning_problem(spec, clean_method, clean_params)):
        errors["params.prune_ranks"] = problem
    if spec is not None and not param_errors:
        problem = base_pruning_problem(spec, clean_method, clean_params, task_spec)
        if not problem and base_pruning.wanted(clean_params) and config is not None and task_spec.generative:
            problem = base_pruning.model_type_problem(config.get("model_type"))  # else the run checks the layout
        if not problem and config is not None and (heads := config.get("num_attention_heads")):
            kv_heads = config.get("num_key_value_heads") or heads
            problem = base_pruning.heads_problem(clean_params.get("prune_heads") or 0, heads, kv_heads)
        if problem:
            errors["params.prune_heads"] = problem
    if spec is not None and not method_errors and (problem := activation_problem(spec, clean_method, task)):
        errors["method_params.activated"] = problem
    positions = (config or {}).get("max_position_embeddings") or (config or {}).get("n_positions")
    if spec is not None and not method_errors and (problem := virtual_tokens_problem(spec, clean_method, positions)):
        errors["method_params.num_virtual_tokens"] = problem
    if errors:
        raise ValidationFailed("the job has errors; fix the fields named", errors=errors)
    columns = {
        "text_column": text_column,
        "label_column": label_column,
        "input_column": input_column,
        "messages_column": messages_column,
        "template": template,
    }
    chosen = job_choices(
        task=task_spec,
        method=spec,
        dataset=dataset,
        eval_dataset=eval_dataset,
        base_model=base_model,
        columns=columns,
        params=clean_params,
        method_params=clean_method,
    )
    if templated(task_spec) and chosen.params["max_length"] is not None:
        errors.update(
            sft_preflight_errors(
                dataset=dataset,
                base_model=base_model,
                max_length=chosen.params["max_length"],
                options=sft_options(text_column, label_column, input_column, messages_column, template, task=task_spec),
            )
        )
    if errors:
        raise ValidationFailed("the job has errors; fix the fields named", errors=errors)
    return chosen.method_params, chosen.params, chosen.reasons


GROUP_REFUSAL = (
    "a group run holds one adapter per group; download the archive and load a group's adapter through its index.json"
)
METHOD_NAMES = frozenset(m.name for m in all_methods())


def start_errors(
    *,
    start_from: Job,
    start_mode: str,
    base_model: BaseModel,
    method: str,
    task: str,
    dataset: Dataset,
    label_column: str,
) -> dict[str, str]:
    """Why a job cannot start from start_from's adapter, per field (empty when it can)."""
    if start_mode not in START_MODES:
        return {"start_mode": f"choose one of: {', '.join(START_MODES)}"}
    if start_from.status != Job.Status.SUCCEEDED:
        return {"start_from": f"job #{start_from.pk} has not succeeded, so it has no adapter to start from"}
    if start_from.task_per_group:
        return {"start_from": f"job #{start_from.pk}'s adapter has a task per group; start from a one-task adapter"}
    if start_from.group_column:
        return {"start_from": f"job #{start_from.pk} holds one adapter per group; start from a single adapter"}
    if start_from.base_model_id != base_model.pk:
        return {
            "base_model": f"job #{start_from.pk} was trained on {start_from.base_model.name}; an adapter only "
            "fits the base model it was trained on"
        }
    if start_from.task != task:
        return {"task": f"job #{start_from.pk} was trained for {start_from.task}"}
    reason = (
        start_refusal(start_mode, start_from.method, method, start_from.method_params)
        if method in METHOD_NAMES
        else None
    )
    if reason:
        return {"method": reason}
    known = EvalReport.objects.filter(job_id=start_from.pk).values_list("data__labels", flat=True).first()
    labels = dataset.stats.get("labels") if dataset.stats.get("label_column") == label_column else None
    unknown = [str(v) for v in (labels or []) if known and str(v) not in known]
    if unknown:
        return {
            "start_from": f"job #{start_from.pk}'s adapter knows the labels {', '.join(known)}; this dataset "
            f"also has {', '.join(unknown[:5])}"
        }
    return {}


def runtime_errors(*, priority, time_limit_seconds) -> dict[str, str]:
    errors = {}
    if priority not in Job.Priority.values:
        errors["priority"] = f"priority must be one of {', '.join(map(str, Job.Priority.values))} (low, normal, high)"
    if time_limit_seconds is not None:
        low, high = settings.JOB_LEASE_SECONDS, settings.JOB_TIME_LIMIT_MAX_SECONDS
        if (
            isinstance(time_limit_seconds, bool)
            or not isinstance(time_limit_seconds, int)
            or not low < time_limit_seconds <= high
        ):
            errors["time_limit"] = (
                f"the time limit must be more than {low // 60 or 1} minute(s) and at most {high // 60} minutes"
            )
    return errors


def group_errors(
    dataset: Dataset,
    column: str,
    used: tuple[str, ...],
    *,
    shared: bool = False,
    method: str = "",
    task: str = "",
    eval_dataset: Dataset | None = None,
) -> dict[str, str]:
    """Why the rows cannot be split into one adapter per value of `column` (blank: no split asked for), each group
    continuing a shared adapter when `shared`; or, for a method that routes rows by task (Poly, multitask prompt
    tuning), why they cannot train one adapter with a task per value."""
    if not column:
        return {}
    spec = get_method(method) if method in METHOD_NAMES else None
    if spec is not None and task_routing.routes_tasks(spec, column):
        if problem := task_routing.problem(spec, task, shared):
            return {"group_shared" if shared and task in task_routing.TASKS else "group_column": problem}
        if eval_dataset is not None and column not in eval_dataset.columns:
            return {
                "eval_dataset": f"{eval_dataset.name} has no column '{column}': with a task per group, each "
                "evaluation row needs its group too"
            }
    if shared and spec is not None and not spec.can_continue:
        return {
            "group_shared": f"each group would continue the shared {spec.label} adapter, which cannot be trained "
            "further; train each group from the base model (turn this off)"
        }
    if column not in dataset.columns:
        return {"group_column": f"{dataset.name} has no column '{column}'; choose one of {', '.join(dataset.columns)}"}
    if column in used:
        return {"group_column": f"'{column}' is what the adapter reads or predicts; group by another column"}
    return {}
