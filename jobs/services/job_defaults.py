"""The settings a job form left empty, chosen when the job is created (peftcore.defaults has the rules) from what
the studio already knows: the dataset's rows and labels, the token lengths a worker counted, the model's
position limit. What it cannot know yet (token lengths not counted) training chooses from the data. Also the
warnings the form shows before a run that is likely to learn nothing."""

import json

from django.conf import settings

from peftcore import defaults, gemma_bundle
from peftcore.methods import Method
from peftcore.models import BUNDLED_MODEL_ID, LOCAL_PREFIX, ModelRefError, resolve_model
from peftcore.tasks import Task
from peftcore.token_lengths import summarise

from ..estimates import job_estimate
from ..models import BaseModel, Dataset, TokenStats
from .counts import _sft_key, sft_options, templated

# Below these, a run is likely to end predicting one label for every row (docs/benchmarks.md).
FEW_ROWS = 100
FEW_PER_LABEL = 20
FEW_STEPS = 50
PROMPT_METHOD_ROWS = 1_000  # prompt methods (prompt tuning, p-tuning, prefix tuning) learn slowly from little data


def model_config(base_model: BaseModel) -> dict | None:
    """config.json of a base model on this machine (the bundled one, or under the model root); None for a hub
    model not yet downloaded (its worker checks it)."""
    if base_model.source == gemma_bundle.MODEL_ID:
        return _known_config(gemma_bundle.CONFIG, base_model)
    if base_model.source != BUNDLED_MODEL_ID and not base_model.source.startswith(LOCAL_PREFIX):
        return None
    try:
        folder = resolve_model(base_model.source, model_root=settings.MODEL_ROOT)
        return json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (ModelRefError, OSError, ValueError):
        return None


def _known_config(known: dict, base_model: BaseModel) -> dict:
    """A bundled model's config.json once converted here, else what it is known to say (the web process may have
    no copy: each worker converts its own)."""
    try:
        folder = resolve_model(base_model.source, model_root=settings.MODEL_ROOT)
        return json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (ModelRefError, OSError, ValueError):
        return known


def training_rows(dataset: Dataset, eval_dataset: Dataset | None, params: dict) -> int:
    """The rows training will read: the row limit applied, the hold-out taken away when there is no evaluation
    dataset (the same rule as peftcore.splits)."""
    rows = min(dataset.rows, params.get("max_rows") or dataset.rows)
    if eval_dataset is not None or rows < 2:
        return rows
    return rows - defaults.eval_rows(rows, params.get("eval_fraction"))


def token_histogram(*, task: Task, dataset: Dataset, base_model: BaseModel, columns: dict) -> dict | None:
    """The token lengths a worker counted for these columns ({length: rows}), None when not yet counted."""
    stats = _token_stats(task=task, dataset=dataset, base_model=base_model, columns=columns)
    return stats.result["histogram"] if stats is not None else None


def _token_stats(*, task: Task, dataset: Dataset, base_model: BaseModel, columns: dict):
    if templated(task):
        column = _sft_key(
            sft_options(
                columns.get("text_column", ""),
                columns.get("label_column", ""),
                columns.get("input_column", ""),
                columns.get("messages_column", ""),
                columns.get("template", ""),
                task=task,
            )
        )
    else:
        column = columns.get("text_column", "")
    stats = TokenStats.objects.filter(dataset=dataset, base_model=base_model, column=column).first()
    if stats is None or not stats.result or "histogram" not in stats.result:
        return None
    return stats


def token_lengths(
    *, task: Task, dataset: Dataset, base_model: BaseModel, columns: dict
) -> tuple[int | None, int | None]:
    """(the 95th percentile of the token lengths a worker counted for these columns, and for SFT the length
    that keeps part of every answer); (None, None) when not yet counted."""
    from peftcore.token_lengths import sft_check

    stats = _token_stats(task=task, dataset=dataset, base_model=base_model, columns=columns)
    if stats is None:
        return None, None
    keep = sft_check(stats.result, 1)["needed_length"] if templated(task) else None
    return summarise(stats.result["histogram"]).get("p95"), keep


def job_choices(
    *,
    task: Task,
    method: Method,
    dataset: Dataset,
    eval_dataset: Dataset | None,
    base_model: BaseModel,
    columns: dict,
    params: dict,
    method_params: dict,
) -> defaults.Choices:
    """The job's settings with every empty one that can be chosen now chosen, and why."""
    labels = dataset.stats.get("labels") if dataset.stats.get("label_column") == columns.get("label_column") else None
    config = model_config(base_model) or {}
    limit = config.get("max_position_embeddings") or config.get("n_positions")
    # with an evaluation dataset its texts count too: training measures both (peftcore.train)
    p95, keep = (
        (None, None)
        if eval_dataset is not None
        else token_lengths(task=task, dataset=dataset, base_model=base_model, columns=columns)
    )
    facts = defaults.Facts(
        generative=task.generative,
        has_labels=task.has_labels,
        train_rows=training_rows(dataset, eval_dataset, params),
        num_labels=len(labels) if labels else None,
        token_p95=p95,
        keep_answers=keep,
        position_limit=limit if isinstance(limit, int) else None,
    )
    chosen = defaults.resolve(facts, method, params, method_params)
    if params.get("eval_fraction") is None and eval_dataset is None and dataset.rows >= 2:
        chosen.reasons["params.eval_fraction"] = defaults.eval_reason(
            min(dataset.rows, params.get("max_rows") or dataset.rows)
        )
    return chosen


def job_warnings(
    *,
    task: Task,
    method: Method,
    dataset: Dataset,
    params: dict,
    method_params: dict,
    label_column: str,
    train_rows: int,
) -> list[str]:
    """What makes a run likely to end predicting one label for every row (or learning nothing), said before it
    starts, with what to change."""
    found = []
    if train_rows < FEW_ROWS:
        found.append(
            f"Only {train_rows:,} rows to train on: a model this size usually needs a few hundred to learn "
            "anything; add rows if you can."
        )
    counts = dataset.stats.get("labels") if dataset.stats.get("label_column") == label_column else None
    if task.has_labels and isinstance(counts, dict):
        rare = sorted((count, label) for label, count in counts.items() if count < FEW_PER_LABEL)
        if rare:
            shown = ", ".join(f"'{label}' ({count})" for count, label in rare[:5])
            found.append(
                f"Few examples of {shown}: with under {FEW_PER_LABEL} rows a label is rarely learned, and the "
                "model may never predict it. Add rows of those labels or merge them."
            )
    batch, epochs = params.get("batch_size"), params.get("epochs")
    if batch and epochs:
        steps = -(-train_rows // batch) * epochs
        if steps < FEW_STEPS:
            found.append(
                f"Only {steps} learning steps ({epochs} epoch(s) of batches of {batch}): too few to move the "
                "model. Leave Epochs empty (the studio then plans about 300 steps) or lower the batch size."
            )
    if method.how == "prompts" and train_rows < PROMPT_METHOD_ROWS:
        found.append(
            f"{method.label} learns slowly from little data (under {PROMPT_METHOD_ROWS:,} rows it often stays on "
            "one answer); LoRA is the safer choice here."
        )
    rate, best = params.get("learning_rate"), defaults.measured_rate(method, method_params)[0]
    if rate is not None and rate < best / 10:
        found.append(
            f"The learning rate {rate:g} is far below the {best:g} measured best for {method.label} with these "
            "settings; training may barely move. Leave it empty to use the measured one."
        )
    return found


def job_defaults_preview(
    *,
    task: Task,
    method: Method,
    dataset: Dataset,
    eval_dataset: Dataset | None,
    base_model: BaseModel,
    columns: dict,
    params: dict,
    method_params: dict,
) -> dict:
    """What the job form's empty settings will be and why, and the warnings for this job: {"choices": [{"name",
    "label", "value", "reason"}], "warnings": [text]} (the form shows it before submission)."""
    from peftcore.training_params import TRAINING_PARAMS

    chosen = job_choices(
        task=task,
        method=method,
        dataset=dataset,
        eval_dataset=eval_dataset,
        base_model=base_model,
        columns=columns,
        params=params,
        method_params=method_params,
    )
    labels = {f"params.{p.name}": p.label for p in TRAINING_PARAMS}
    labels.update({f"method_params.{p.name}": f"{method.label} {p.label.lower()}" for p in method.params})
    values = {**{f"params.{k}": v for k, v in chosen.params.items()}}
    values.update({f"method_params.{k}": v for k, v in chosen.method_params.items()})
    rows = [
        {"name": key, "label": labels.get(key, key), "value": values.get(key), "reason": reason}
        for key, reason in chosen.reasons.items()
    ]
    if chosen.params.get("max_length") is None:
        rows.append(
            {
                "name": "params.max_length",
                "label": labels["params.max_length"],
                "value": None,
                "reason": "chosen when training starts, to fit 95% of the texts (their token lengths are not "
                "counted yet)",
            }
        )
    warnings = job_warnings(
        task=task,
        method=method,
        dataset=dataset,
        params=chosen.params,
        method_params=chosen.method_params,
        label_column=columns.get("label_column", ""),
        train_rows=training_rows(dataset, eval_dataset, params),
    )
    train = training_rows(dataset, eval_dataset, params)
    held = (
        eval_dataset.rows
        if eval_dataset is not None
        else max(min(dataset.rows, params.get("max_rows") or dataset.rows) - train, 0)
    )
    histogram = token_histogram(task=task, dataset=dataset, base_model=base_model, columns=columns)
    estimate = job_estimate(
        team_id=dataset.team_id,
        base_model=base_model,
        method=method.name,
        params=chosen.params,
        train_rows=train,
        eval_rows=held,
        histogram=histogram,
        config=model_config(base_model),
    )
    return {"choices": rows, "warnings": warnings, "estimate": estimate}
