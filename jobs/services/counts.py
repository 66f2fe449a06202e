"""Pre-flight counts a worker makes for the forms: trainable parameters per method and token lengths per column."""

import hashlib
import json

from django.conf import settings

from peftcore.sft import AUTO as AUTO_TEMPLATE
from peftcore.sft import path_root
from peftcore.tasks import Task, UnknownTaskError, get_task

from .. import dispatch
from ..errors import Refused
from ..models import BaseModel, Dataset, TokenStats, TrainableCount


def trainable_count_request(*, base_model: BaseModel, method: str, params: dict) -> TrainableCount:
    """The stored count for these (validated) parameters, or a pending one with a count task on its way."""
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":"))
    key = hashlib.sha256(canonical.encode()).hexdigest()
    count, created = TrainableCount.objects.get_or_create(
        base_model=base_model, method=method, params_key=key, defaults={"params": params}
    )
    dispatch.ask_worker(count, created, settings.COUNT_RETRY_SECONDS, dispatch.COUNT_TRAINABLE)
    return count


def trainable_count_set(*, count: TrainableCount, result: dict) -> None:
    TrainableCount.objects.filter(pk=count.pk).update(result=result)


def templated(task: Task) -> bool:
    """The task builds its examples from its columns with a template (SFT): token counts and the pre-flight
    checks are then per example, keyed by the columns and template (services.counts)."""
    return "template" in task.fields


def sft_options(
    text_column: str,
    label_column: str,
    input_column: str = "",
    messages_column: str = "",
    template: str = "",
    *,
    task: Task | None = None,
) -> dict:
    """The SFT columns and template as the pre-flight count keys them (unused columns left out). A task whose
    input column has a role of its own (preference tuning's rejected answer) is counted as prompt + response."""
    if messages_column:
        return {"messages": messages_column, "template": template or AUTO_TEMPLATE}
    extra = None if task is not None and task.input_role is not None else input_column or None
    return {
        "prompt": text_column,
        "response": label_column,
        "input": extra,
        "template": template or AUTO_TEMPLATE,
    }


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


def token_stats_request(
    *, dataset: Dataset, base_model: BaseModel, column: str = "", sft: dict | None = None
) -> TokenStats:
    """The stored token lengths of a dataset column (or, with sft options, of SFT examples as the template builds
    them) under a model's tokenizer, or a pending row with a task on its way (asked again when a pending one is
    older than TOKEN_COUNT_RETRY_SECONDS: its message was lost)."""
    if sft:
        column = _sft_key(sft)
    stats, created = TokenStats.objects.get_or_create(
        dataset=dataset, base_model=base_model, column=column, defaults={"options": sft or {}}
    )
    dispatch.ask_worker(stats, created, settings.TOKEN_COUNT_RETRY_SECONDS, dispatch.COUNT_TOKENS)
    return stats


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
        errors[field] = (
            f"{check['rejected_count']} row(s) cannot be used with these columns (row {first['row']}: "
            f"{first['message']}); fix those rows or choose other columns"
        )
    if check["masked_count"]:
        errors["params.max_length"] = (
            f"{check['masked_count']} row(s) (row {', '.join(map(str, check['masked_rows']))}) have prompts of "
            f"{max_length} tokens or more, so nothing of their answer is left to learn; raise the maximum length "
            f"to {check['needed_length']} or shorten those prompts"
        )
    return errors


def token_stats_ask(
    *,
    dataset: Dataset,
    base_model: BaseModel,
    task: str,
    text_column: str,
    label_column: str = "",
    input_column: str = "",
    messages_column: str = "",
    template: str = "",
) -> TokenStats:
    """The token lengths a job form's columns would train on (SFT: whole examples as the template builds them),
    asked for once (see token_stats_request). Refused: columns the dataset lacks."""
    try:
        task_spec = get_task(task)
    except UnknownTaskError as exc:
        raise Refused(str(exc)) from None
    if templated(task_spec):
        options = sft_options(text_column, label_column, input_column, messages_column, template, task=task_spec)
        if problem := sft_options_error(dataset, options):
            raise Refused(problem)
        return token_stats_request(dataset=dataset, base_model=base_model, sft=options)
    if text_column not in dataset.columns:
        raise Refused(
            f"'{text_column}' is not a column of '{dataset.name}'; its columns are: {', '.join(dataset.columns)}"
            if text_column
            else "choose the text column"
        )
    return token_stats_request(dataset=dataset, base_model=base_model, column=text_column)


def token_stats_label(stats: TokenStats) -> str:
    """What was counted, as the forms name it: a column, or SFT's messages or prompt -> response columns."""
    options = stats.options or {}
    if not options:
        return stats.column
    return options.get("messages") or f"{options['prompt']} → {options['response']}"
