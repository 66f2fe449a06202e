"""Writes for combination jobs (issue 21): finished adapters of one base model, task and label set combined with
weights into a new adapter, queued and run on a worker like any job (peftcore/combine_run.py), which evaluates
the result beside each parent on the rows the user picks.

What the web process can judge is judged here, per field, before anything is queued: the parents (finished, of
one base model, task and labels, plain LoRA), the weights and the combination's own needs. The worker checks
the adapter files themselves again (peftcore.combine.combine_refusal).

A learned combination (X-LoRA) is a job of method xlora that trains a router over the parents on the first
parent's rows and settings; its weights only pick the parents."""

import math

from peftcore.combine import LEARNED, MODES, SAME_RANK, WITH_DENSITY
from peftcore.lora_ga import BASE_MOVING_INITS
from peftcore.methods import get_method
from peftcore.quantize import FOUR_BIT
from peftcore.schema import validate_params

from ..errors import ValidationFailed
from ..models import Dataset, EvalReport, Job
from .job_checks import runtime_errors
from .job_defaults import model_config
from .jobs import job_insert

MOST_PARENTS = 8
COMBINABLE_METHODS = ("lora", "ia3")
FAILED = "the combination has errors; fix the fields named"


def combine_errors(
    *, parents: list[Job], weights: list, combination: str, density, eval_dataset: Dataset | None
) -> dict[str, str]:
    """Why these parents cannot be combined so, per field (empty when they can)."""
    if not 2 <= len(parents) <= MOST_PARENTS:
        return {"parents": f"pick 2 to {MOST_PARENTS} finished jobs to combine (got {len(parents)})"}
    if len({p.pk for p in parents}) != len(parents):
        return {"parents": "each job may be picked once; give it a larger weight instead"}
    errors = {}
    for parent in parents:
        if refusal := _parent_refusal(parent):
            errors["parents"] = refusal
            break
    first = parents[0]
    for parent in parents[1:]:
        if errors:
            break
        if parent.base_model_id != first.base_model_id:
            errors["parents"] = (
                f"job #{parent.pk} adapts {parent.base_model.name} and job #{first.pk} {first.base_model.name}; "
                "only adapters of one base model combine"
            )
        elif parent.method != first.method:
            errors["parents"] = (
                f"job #{parent.pk} is a {parent.method} adapter and job #{first.pk} a {first.method} one; "
                "combine adapters of one kind"
            )
        elif parent.task != first.task:
            errors["parents"] = f"job #{parent.pk} was trained for {parent.task} and job #{first.pk} for {first.task}"
        elif (
            first.method == "lora"
            and combination in SAME_RANK
            and parent.method_params.get("r") != first.method_params.get("r")
        ):
            errors["combination"] = (
                f"'{combination}' needs adapters of one rank (job #{first.pk}: r {first.method_params.get('r')}, "
                f"job #{parent.pk}: r {parent.method_params.get('r')}); use 'sum' or 'svd'"
            )
    if not errors:
        labels = dict(EvalReport.objects.filter(job__in=parents).values_list("job_id", "data__labels"))
        known = labels.get(first.pk)
        for parent in parents[1:]:
            if labels.get(parent.pk) != known:
                theirs = ", ".join(map(str, labels.get(parent.pk) or [])) or "none"
                errors["parents"] = (
                    f"job #{parent.pk} knows the labels {theirs} and job #{first.pk} "
                    f"{', '.join(map(str, known or [])) or 'none'}; only adapters of one label set combine"
                )
                break
    if len(weights) != len(parents):
        errors["weights"] = f"give one weight per job: {len(parents)} jobs, {len(weights)} weights"
    elif any(isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) for w in weights):
        errors["weights"] = "weights must be numbers, e.g. 1, 0.5 or -1 (a negative weight subtracts)"
    elif not any(w > 0 for w in weights):
        errors["weights"] = "at least one weight must be positive (a negative weight subtracts an adapter)"
    elif any(abs(w) > 10 for w in weights):
        errors["weights"] = "weights lie between -10 and 10"
    if combination not in MODES:
        errors["combination"] = f"choose one of: {', '.join(MODES)}"
    elif combination == LEARNED:
        errors.update(_learned_errors(parents, weights, errors))
    elif first.method == "ia3" and combination != "linear":
        errors["combination"] = "IA3 adapters combine by 'linear' only: the weighted sum of their scaling vectors"
    elif combination in WITH_DENSITY:
        if isinstance(density, bool) or not isinstance(density, (int, float)) or not 0 < density <= 1:
            errors["density"] = f"'{combination}' keeps a share of each change: a density above 0, at most 1"
    if eval_dataset is not None and (first.text_column, first.label_column) != ("", ""):
        missing = [c for c in (first.text_column, first.label_column) if c and c not in eval_dataset.columns]
        if missing:
            errors["eval_dataset"] = f"{eval_dataset.name} has no column {', '.join(missing)}, which the jobs read"
    return errors


def _learned_errors(parents: list[Job], weights: list, errors: dict) -> dict[str, str]:
    """What X-LoRA's learned mix needs beyond any combination: LoRA adapters of a model it runs on, for a task it
    trains, and weights that only pick (the router learns the mix)."""
    xlora, first = get_method("xlora"), parents[0]
    if "parents" in errors:
        return {}
    if first.method != "lora":
        return {"combination": "'learned' mixes LoRA adapters (X-LoRA); combine IA3 adapters by 'linear'"}
    if first.task not in xlora.tasks:
        return {
            "combination": f"'learned' mixes adapters of a language model that writes (SFT or preference), not "
            f"{first.task} ones; use 'sum' or 'svd'"
        }
    model_type = (model_config(first.base_model) or {}).get("model_type", "")
    if refusal := xlora.supports(model_type, first.task):
        return {"combination": refusal}
    for parent in parents:
        if parent.params.get("quantize") == FOUR_BIT:
            return {"parents": f"job #{parent.pk} trained on a 4-bit base (QLoRA); X-LoRA mixes full-precision LoRAs"}
    if "weights" not in errors and any(w <= 0 for w in weights):
        return {
            "weights": "'learned' cannot subtract: give each picked job a positive weight (the router sets the mix)"
        }
    return {}


def _shown_mode(combination: str) -> str:
    return "learned mix (X-LoRA router)" if combination == LEARNED else combination


def _base_pruned(job: Job) -> bool:
    """Whether the job's adapter fits a base model Light-PEFT cut: it cut it, or continued one that did."""
    seen = set()
    while job is not None and job.pk not in seen:
        if job.params.get("prune_heads") or job.params.get("prune_channels"):
            return True
        seen.add(job.pk)
        job = job.start_from if job.start_mode == "continue" else None
    return False


def _parent_refusal(parent: Job) -> str | None:
    if parent.status != Job.Status.SUCCEEDED:
        return f"job #{parent.pk} has not succeeded, so it has no adapter to combine"
    if parent.method not in COMBINABLE_METHODS:
        return (
            f"job #{parent.pk} is a {parent.method} adapter; only LoRA and IA3 adapters combine "
            "(peft adds up their changes)"
        )
    params = parent.method_params
    if params.get("use_dora"):
        return f"job #{parent.pk} uses DoRA, whose magnitudes do not add up; combine plain LoRA adapters"
    if params.get("use_kasa") or params.get("init") in BASE_MOVING_INITS:
        return (
            f"job #{parent.pk}'s adapter changed the base weights (KaSA, PiSSA, OLoRA, LoRA-GA or CorDA); "
            "combine plain LoRA adapters"
        )
    if (params.get("bd_blocks") or 0) > 1:
        return f"job #{parent.pk} is a BD-LoRA adapter (block-diagonal factors); combine plain LoRA adapters"
    if params.get("activated"):
        return f"job #{parent.pk} is an aLoRA adapter (on only from the answer on); combine plain LoRA adapters"
    if parent.group_column:
        return f"job #{parent.pk} holds one adapter per group; combine single adapters"
    if parent.params.get("prune_ranks"):
        return (
            f"job #{parent.pk}'s adapter had its ranks pruned (Light-PEFT), so its layers differ in rank; combine "
            "unpruned adapters"
        )
    if _base_pruned(parent):
        return (
            f"job #{parent.pk}'s adapter fits a base model whose heads and channels Light-PEFT cut; combine "
            "adapters trained on the whole base model"
        )
    if parent.start_mode == "stack":
        return f"job #{parent.pk} is stacked on another adapter; combine adapters trained on the base model"
    return None


def job_combine_create(
    *,
    team,
    user,
    parents: list[Job],
    weights: list,
    combination: str = "sum",
    density=None,
    eval_dataset: Dataset | None = None,
    name: str = "",
    priority: int = Job.Priority.NORMAL,
) -> Job:
    foreign = [p for p in parents if p.team_id != team.pk]
    if foreign or (eval_dataset is not None and eval_dataset.team_id != team.pk):
        raise ValidationFailed(FAILED, errors={"parents" if foreign else "eval_dataset": "not found"})
    errors = combine_errors(
        parents=parents, weights=weights, combination=combination, density=density, eval_dataset=eval_dataset
    )
    errors.update(runtime_errors(priority=priority, time_limit_seconds=None))
    if errors:
        raise ValidationFailed(FAILED, errors=errors)
    first = parents[0]
    method, method_params, params = first.method, first.method_params, first.params
    if combination == LEARNED:  # trains X-LoRA's router over the parents, with the first parent's data and steps
        method = "xlora"
        method_params = validate_params(get_method(method).params, {"n_experts": len(parents)})[0]
        # X-LoRA's own rate; its router weights come from hooks that activation checkpointing would miss
        params = {
            **params,
            "learning_rate": get_method(method).recommended_learning_rate,
            "gradient_checkpointing": False,
        }
    recipe = {
        "parents": [p.pk for p in parents],
        "weights": [float(w) for w in weights],
        "combination": combination,
        "density": float(density) if combination in WITH_DENSITY else None,
    }
    shown = (
        " + ".join(f"{w:g}×#{p.pk}" for p, w in zip(parents, recipe["weights"]))
        if combination != LEARNED
        else ", ".join(f"#{p.pk}" for p in parents)
    )
    return job_insert(
        team=team,
        user=user,
        audit={"action": "job.combine", "combination": combination, "parents": recipe["parents"]},
        name=(name or f"{combination}: {shown}")[:200],
        # The first parent's data and settings: with no evaluation dataset, its held-out rows (same seed and
        # share) are the rows the combination and every parent are measured on.
        dataset=first.dataset,
        eval_dataset=eval_dataset or first.eval_dataset,
        base_model=first.base_model,
        task=first.task,
        method=method,
        method_params=method_params,
        params=params,
        choices={"combine": f"{_shown_mode(combination)} of jobs {', '.join(f'#{p.pk}' for p in parents)}"},
        text_column=first.text_column,
        label_column=first.label_column,
        input_column=first.input_column,
        messages_column=first.messages_column,
        template=first.template,
        combine=recipe,
        priority=priority,
    )
