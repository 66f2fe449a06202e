"""Writes for sweeps (issue 21, "try several"): one job's data and settings, run again for several methods and/or
a small grid over one or two settings (rank, learning rate, epochs), or a random sample of that grid.

A sweep is all or nothing: every point is checked first and the jobs are created in one transaction, each
through job_create (its checks and the team's quota lock), so a refusal anywhere queues none of them."""

import itertools
import random

from django.db import transaction

from peftcore.methods import UnknownMethodError, get_method
from teams.audit import audit_record

from .. import quotas, runtime
from ..errors import ValidationFailed
from ..models import Job, Sweep
from .job_checks import job_validate
from .jobs import job_create

# What a sweep may vary: the name users give, and where it lives in a job.
AXES = {"r": "method_params", "learning_rate": "params", "epochs": "params"}
MOST_JOBS = 24
MOST_VALUES = 8
FAILED = "the sweep has errors; fix the fields named"


def sweep_points(methods: list[str], grid: dict[str, list], budget: int | None, seed: int = 0) -> list[dict]:
    """Each job of the sweep as {"method", "values"}: every method crossed with every combination of the grid's
    values (a method without a rank takes no rank: its duplicates go), or `budget` of them drawn at random."""
    names = [name for name in AXES if name in grid]
    points, seen = [], set()
    for method in methods:
        has_rank = "r" in {p.name for p in get_method(method).params}
        for values in itertools.product(*(grid[name] for name in names)):
            chosen = {n: v for n, v in zip(names, values) if n != "r" or has_rank}
            key = (method, tuple(sorted(chosen.items())))
            if key not in seen:
                seen.add(key)
                points.append({"method": method, "values": chosen})
    if budget is not None and budget < len(points):
        points = sorted(random.Random(seed).sample(points, budget), key=points.index)
    return points


def point_label(point: dict) -> str:
    shown = " ".join(
        f"{name}={value:g}" if isinstance(value, float) else f"{name}={value}"
        for name, value in point["values"].items()
    )
    return f"{point['method']} {shown}".strip()


def _check(methods, grid, budget) -> dict[str, str]:
    errors = {}
    if not methods:
        errors["methods"] = "pick at least one method"
    for method in methods:
        try:
            get_method(method)
        except UnknownMethodError as exc:
            errors["methods"] = str(exc)
    unknown = [name for name in grid if name not in AXES]
    if unknown:
        errors["grid"] = f"a sweep varies {', '.join(AXES)}; not {', '.join(unknown)}"
    elif len(grid) > 2:
        errors["grid"] = "vary at most two settings at once; a third multiplies the jobs past what tells you anything"
    for name, values in grid.items():
        if (
            not isinstance(values, list)
            or not 1 <= len(values) <= MOST_VALUES
            or len(set(map(str, values))) != len(values)
        ):
            errors[f"grid.{name}"] = f"give {name} 1 to {MOST_VALUES} different values"
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int) or budget < 1):
        errors["budget"] = "the budget is a number of jobs, at least 1"
    return errors


def sweep_create(
    *,
    team,
    user,
    base_job: Job,
    methods: list[str],
    grid: dict[str, list],
    budget: int | None = None,
    name: str = "",
    seed: int = 0,
) -> Sweep:
    """Queue one job per point, with base_job's data, columns and the settings its user typed (what the studio
    chose for it is chosen again per point)."""
    if base_job.team_id != team.pk:
        raise ValidationFailed(FAILED, errors={"base_job": "not found"})
    if base_job.combine:
        raise ValidationFailed(FAILED, errors={"base_job": "a combination trains nothing; sweep a trained job"})
    errors = _check(methods, grid, budget)
    if errors:
        raise ValidationFailed(FAILED, errors=errors)
    points = sweep_points(methods, grid, budget, seed)
    if len(points) > MOST_JOBS:
        raise ValidationFailed(
            FAILED,
            errors={"grid": f"that is {len(points)} jobs; a sweep runs at most {MOST_JOBS}: fewer values, or a budget"},
        )
    if (limit := team.max_concurrent_jobs) is not None and (active := quotas.active_jobs(team.pk)) + len(
        points
    ) > limit:
        raise ValidationFailed(
            FAILED,
            errors={
                "quota": f"this sweep queues {len(points)} jobs and {team.name} has {active} queued or running, over "
                f"its limit of {limit}; sweep fewer, or wait for jobs to finish"
            },
        )
    settings = [_job_settings(base_job, point) for point in points]
    for point, job_settings in zip(points, settings):  # every point checked before any job is created
        try:
            job_validate(**{k: v for k, v in job_settings.items() if k in VALIDATED})
        except ValidationFailed as exc:
            detail = "; ".join(f"{field}: {message}" for field, message in exc.errors.items())
            raise ValidationFailed(FAILED, errors={"grid": f"{point_label(point)}: {detail}"}) from None
    with transaction.atomic():
        sweep = Sweep.objects.create(
            team=team,
            created_by=user,
            name=(name or f"sweep of {base_job.name}")[:200],
            base_job=base_job,
            axes={"methods": methods, **grid},
            budget=budget,
        )
        for point, job_settings in zip(points, settings):
            job_create(team=team, user=user, sweep=sweep, name=f"{sweep.name}: {point_label(point)}", **job_settings)
        audit_record(team_id=team.pk, user=user, action="sweep.create", target=f"sweep {sweep.pk}", jobs=len(points))
    return sweep


VALIDATED = {
    "dataset",
    "eval_dataset",
    "base_model",
    "method",
    "task",
    "text_column",
    "label_column",
    "method_params",
    "params",
    "input_column",
    "messages_column",
    "template",
}


def _job_settings(base: Job, point: dict) -> dict:
    chosen = set(base.choices or {})
    params = {k: v for k, v in base.params.items() if v is not None and f"params.{k}" not in chosen}
    same_method = point["method"] == base.method
    method_params = (
        {k: v for k, v in base.method_params.items() if v is not None and f"method_params.{k}" not in chosen}
        if same_method
        else {}
    )
    for name, value in point["values"].items():
        (method_params if AXES[name] == "method_params" else params)[name] = value
    return {
        "dataset": base.dataset,
        "eval_dataset": base.eval_dataset,
        "base_model": base.base_model,
        "method": point["method"],
        "task": base.task,
        "text_column": base.text_column,
        "label_column": base.label_column,
        "input_column": base.input_column,
        "messages_column": base.messages_column,
        "template": base.template,
        "method_params": method_params,
        "params": params,
        "priority": base.priority,
        "group_column": base.group_column,
        "group_shared": base.group_shared,
    }


def sweep_cancel(*, sweep: Sweep, user) -> int:
    """Cancel every job of the sweep still queued or running; returns how many were asked to stop."""
    live = list(sweep.jobs.filter(status__in=(Job.Status.QUEUED, Job.Status.RUNNING)))
    for job in live:
        runtime.job_cancel(job=job, user=user)
    audit_record(team_id=sweep.team_id, user=user, action="sweep.cancel", target=f"sweep {sweep.pk}", jobs=len(live))
    return len(live)
