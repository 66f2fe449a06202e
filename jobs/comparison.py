"""Reads for comparing jobs side by side and ranking a dataset's jobs (team scoped, like every selector).

A comparison is a table: one row per metric, efficiency figure or configuration value, one column per job,
with `differs` set where the jobs disagree and `best` naming the winning column of a metric. Its query count
does not grow with the jobs compared (at most MAX_JOBS) beyond one query per loss curve.
"""

from __future__ import annotations

from django.db.models import F

from teams.actor import Actor

from .errors import Refused
from .models import Artifact, Job
from .selectors import job_metric_series

MAX_JOBS = 8
LEADERBOARD_SIZE = 20
# (key in Job.metrics, label, higher is better): classification's, then generation's (SFT, seq2seq: ROUGE-L and
# exact match are fractions, BLEU is 0-100), then the losses every task reports. A row is shown when any compared
# job has the metric, so a classifier and a generator side by side leave each other's cells empty.
METRICS = (
    ("accuracy", "accuracy", True),
    ("macro_f1", "macro-F1", True),
    ("rouge_l", "ROUGE-L", True),
    ("bleu", "BLEU", True),
    ("exact_match", "exact match", True),
    ("answer_match", "final answer right", True),
    ("answer_format", "final answer stated", True),
    ("reward_accuracy", "pairs ranked right", True),
    ("reward_margin", "reward margin", True),
    ("perplexity", "perplexity", False),
    ("eval_loss", "eval loss", False),
)
HIGHER_IS_BETTER = {key: higher for key, _, higher in METRICS}


class TooManyJobs(Refused, ValueError):
    pass


def parse_ids(raw: list[str]) -> list[int]:
    """Job ids from `?ids=1&ids=2` or `?ids=1,2`, in the order given, without repeats; ValueError on junk."""
    ids: list[int] = []
    for part in (p.strip() for value in raw for p in value.split(",")):
        if part:
            number = int(part)
            if number not in ids:
                ids.append(number)
            if len(ids) > MAX_JOBS:
                raise TooManyJobs(f"compare at most {MAX_JOBS} jobs at a time")
    return ids


def _row(section: str, name: str, values: list, *, higher_is_better: bool | None = None) -> dict:
    present = [v for v in values if v is not None]
    row = {
        "section": section,
        "name": name,
        "values": values,
        "differs": len({repr(v) for v in values}) > 1,
        "best": [],
    }
    if higher_is_better is not None and present and row["differs"]:
        target = max(present) if higher_is_better else min(present)
        row["best"] = [i for i, v in enumerate(values) if v == target]
    return row


def _flat(prefix: str, jobs: list[Job], reports: list[dict], attribute: str) -> list[dict]:
    """One row per setting: the value the run used (its report's, with every default resolved), else the one
    the job was submitted with (a job not yet run; None: left to the studio)."""
    used = [{**(getattr(job, attribute) or {}), **(report.get(attribute) or {})} for job, report in zip(jobs, reports)]
    keys = sorted({key for values in used for key in values})
    return [_row("configuration", f"{prefix}{key}", [values.get(key) for values in used]) for key in keys]


def job_compare(*, actor: Actor, ids: list[int]) -> dict:
    """{"jobs": [Job], "rows": [...], "curves": {"#id loss": [(step, value)]}}; ids of other teams' jobs, or
    of none, are simply absent (a 404 per id would tell which ids exist)."""
    found = {
        job.pk: job
        for job in Job.objects.filter(team_id=actor.team_id, pk__in=ids)
        .select_related("dataset", "base_model", "report")
        .defer("dataset__preview", "dataset__stats")
    }
    jobs = [found[i] for i in ids if i in found]
    sizes = dict(Artifact.objects.filter(job__in=jobs, kind=Artifact.Kind.ADAPTER).values_list("job_id", "size_bytes"))
    reports = [(job.report.data if hasattr(job, "report") else {}) for job in jobs]
    rows = []
    for key, label, better in METRICS:
        if any((job.metrics or {}).get(key) is not None for job in jobs):
            row = _row("metrics", label, [(job.metrics or {}).get(key) for job in jobs], higher_is_better=better)
            # the 95% interval of each share (peftcore.verdict), so a lead within the noise reads as one
            row["intervals"] = [(r.get("intervals") or {}).get(key) for r in reports]
            rows.append(row)
    rows += [
        _row(
            "efficiency", "trainable parameters", [r.get("trainable_params") for r in reports], higher_is_better=False
        ),
        _row(
            "efficiency",
            "share of the model",
            [r["trainable_params"] / r["total_params"] if r.get("total_params") else None for r in reports],
            higher_is_better=False,
        ),
        _row("efficiency", "adapter bytes", [sizes.get(job.pk) for job in jobs], higher_is_better=False),
        _row("efficiency", "train seconds", [r.get("train_seconds") for r in reports], higher_is_better=False),
        _row("configuration", "status", [job.status for job in jobs]),
        _row("configuration", "dataset", [job.dataset.name for job in jobs]),
        _row("configuration", "base model", [job.base_model.name for job in jobs]),
        _row("configuration", "method", [job.method for job in jobs]),
        _row(
            "configuration",
            "started from",
            [f"#{job.start_from_id} ({job.start_mode})" if job.start_from_id else None for job in jobs],
        ),
    ]
    rows += _flat("", jobs, reports, "params") + _flat("method: ", jobs, reports, "method_params")
    curves = {}
    for job in jobs:
        for name, points in job_metric_series(job=job, names=("loss", "eval_loss")).items():
            if points:
                curves[f"#{job.pk} {name}"] = points
    return {"jobs": jobs, "rows": rows, "curves": curves}


def dataset_leaderboard(*, actor: Actor, dataset_id: int, metric: str = "accuracy", limit: int = LEADERBOARD_SIZE):
    """The best succeeded jobs trained on a dataset, by a metric (JSON key of Job.metrics), best first: highest
    first, or lowest first for a loss or perplexity. Jobs without the metric (another task's) are left out."""
    order = (
        F(f"metrics__{metric}").desc(nulls_last=True)
        if HIGHER_IS_BETTER.get(metric, True)
        else F(f"metrics__{metric}").asc(nulls_last=True)
    )
    return (
        Job.objects.filter(team_id=actor.team_id, dataset_id=dataset_id, status=Job.Status.SUCCEEDED)
        .filter(**{f"metrics__{metric}__isnull": False})
        .select_related("base_model")
        .order_by(order, "-pk")[:limit]
    )
