"""Reads. Every query a user can reach is scoped to the actor's team (teams.actor: the team a page's user works
in, or an API token's own team); another team's object is a 404."""

from collections.abc import Iterable

from django.db.models import Count, F, FloatField, IntegerField, Max, OuterRef, Q, QuerySet, Subquery
from django.db.models.fields.json import KT
from django.db.models.functions import Cast
from django.shortcuts import get_object_or_404

from teams.actor import Actor
from teams.models import Team

from . import queue_order
from .models import (
    Artifact,
    BaseModel,
    Dataset,
    EvalReport,
    Job,
    JobAttempt,
    MetricPoint,
    Sweep,
    Webhook,
    WebhookDelivery,
)


def dataset_list(*, actor: Actor, with_warnings: bool = False) -> QuerySet[Dataset]:
    datasets = Dataset.objects.filter(team_id=actor.team_id).defer("preview", "stats")
    if with_warnings:  # only the warnings of stats, in the same query
        from django.db.models.fields.json import KeyTransform

        datasets = datasets.annotate(warnings_json=KeyTransform("warnings", "stats"))
    return datasets


DATASET_PAGE = 50


def dataset_page(
    *, actor: Actor, before: int | None = None, limit: int = DATASET_PAGE, search: str | None = None, **options
) -> tuple[list[Dataset], int | None]:
    """(one page of the team's datasets, newest first; the `before` of the next page, or None): keyset on the
    id, as job_page."""
    datasets = dataset_list(actor=actor, **options)
    if search:
        datasets = datasets.filter(name__icontains=search)
    return keyset_page(datasets, before, limit)


def keyset_page(rows: QuerySet, before: int | None, limit: int) -> tuple[list, int | None]:
    """(up to `limit` rows with ids below `before`, newest first; the `before` of the next page, or None)."""
    if before is not None:
        rows = rows.filter(pk__lt=before)
    page = list(rows.order_by("-pk")[: limit + 1])
    return page[:limit], (page[limit - 1].pk if len(page) > limit else None)


def dataset_get(*, actor: Actor, dataset_id: int) -> Dataset:
    return get_object_or_404(Dataset.objects.filter(team_id=actor.team_id), pk=dataset_id)


def base_model_list(*, actor: Actor) -> QuerySet[BaseModel]:
    # An actor in no team (team_id None) sees the shared models only.
    return BaseModel.objects.filter(Q(team__isnull=True) | Q(team_id=actor.team_id))


def base_model_get(*, actor: Actor, model_id: int) -> BaseModel:
    return get_object_or_404(base_model_list(actor=actor), pk=model_id)


def base_models_for_task(models, task) -> list[BaseModel]:
    """The models a task can use, from each one's config.json where this machine has it (a hub model not yet
    downloaded is kept: its worker checks it). Refused models are left out of the job form's list."""
    from .services.job_defaults import model_config

    usable = []
    for model in models:
        config = model_config(model)
        if config is None or not task.architecture_refusal(config):
            usable.append(model)
    return usable


def profile_count(model: BaseModel, method: str) -> dict | None:
    """A method's trainable count at its defaults from the model's profile; None when not counted yet or counted
    for other defaults than this release's (the form then asks a worker for a live count; registering the model
    again, as the studio does for its models when it starts, recounts the profile)."""
    from .services.base_models import DEFAULTS_KEY, methods_defaults_key

    profile = model.profile or {}
    if profile.get(DEFAULTS_KEY) != methods_defaults_key():
        return None
    return profile.get(method)


def team_base_model_get(*, team, model_id: int) -> BaseModel:
    """A model the team itself added, or one offered to every team; another team's is a 404."""
    return get_object_or_404(BaseModel.objects.filter(Q(team__isnull=True) | Q(team=team)), pk=model_id)


def job_list(*, actor: Actor) -> QuerySet[Job]:
    return (
        Job.objects.filter(team_id=actor.team_id)
        .select_related("dataset", "base_model", "created_by")
        .defer("dataset__preview", "dataset__stats")
    )


JOB_PAGE = 50


def job_page(
    *,
    actor: Actor,
    before: int | None = None,
    limit: int = JOB_PAGE,
    status: str | None = None,
    method: str | None = None,
    dataset: int | None = None,
    task: str | None = None,
    member: str | None = None,
    search: str | None = None,
) -> tuple[list[Job], int | None]:
    """(one page of the team's jobs, newest first; the `before` that gives the next page, or None). Keyset
    paging on the id through the index job_team_newest: page 500 costs what page 1 does."""
    filters = {"status": status, "method": method, "dataset_id": dataset, "task": task}
    jobs = job_list(actor=actor).filter(**{name: value for name, value in filters.items() if value})
    if member:
        jobs = jobs.filter(created_by__username=member)
    if search:
        jobs = jobs.filter(name__icontains=search)
    return keyset_page(jobs, before, limit)


def job_adapter_choices(*, actor: Actor) -> QuerySet[Job]:
    """Succeeded jobs a new job may start from (their own columns only, newest first)."""
    return (
        Job.objects.filter(team_id=actor.team_id, status=Job.Status.SUCCEEDED)
        .only("pk", "name", "method")
        .order_by("-pk")
    )


COMBINE_CHOICES = 100


def job_combine_candidates(*, actor: Actor, picked: Iterable[int] = ()) -> list[Job]:
    """Jobs offered on the combine form: the team's newest succeeded LoRA and IA3 jobs, and any job asked for by id
    (?ids=, so an older one or a refusal's example can be shown), in one query."""
    picked = [pk for pk in picked if isinstance(pk, int)]
    rows = (
        job_list(actor=actor)
        .filter(Q(status=Job.Status.SUCCEEDED, method__in=("lora", "ia3")) | Q(pk__in=picked))
        .order_by("-pk")
    )
    newest = list(rows[:COMBINE_CHOICES])
    missing = set(picked) - {job.pk for job in newest}
    return newest + list(rows.filter(pk__in=missing)) if missing else newest


def job_get(*, actor: Actor, job_id: int) -> Job:
    return get_object_or_404(job_list(actor=actor).select_related("eval_dataset"), pk=job_id)


def job_presets(*, actor: Actor) -> QuerySet:
    from .models import JobPreset

    return JobPreset.objects.filter(team_id=actor.team_id)


def job_preset_get(*, actor: Actor, preset_id: int):
    return get_object_or_404(job_presets(actor=actor), pk=preset_id)


def job_artifact(*, job: Job, kind: str = Artifact.Kind.ADAPTER) -> Artifact | None:
    return Artifact.objects.filter(job=job, kind=kind).select_related("blob").first()


def job_merged_export(*, job: Job):
    from .models import MergedExport

    return MergedExport.objects.filter(job=job).first()


def job_report(*, job: Job) -> dict | None:
    return job.report.data if hasattr(job, "report") else None


def job_metric_series(*, job: Job, names: tuple[str, ...] = ("loss",), max_points: int = 400) -> dict[str, list]:
    """Metric curves as {name: [(step, value), ...]}, thinned in SQL to about max_points per curve, so a
    long run's page reads a bounded number of rows."""
    points = MetricPoint.objects.filter(job=job, name__in=names)
    last_step = job.progress_step or points.aggregate(m=Max("step"))["m"] or 0
    stride = max(1, -(-last_step // max_points))
    if stride > 1:
        # Per-step curves are thinned; evaluation points (one per epoch) are few and all kept.
        points = points.annotate(phase=F("step") % stride).filter(
            Q(phase=0) | Q(step=last_step) | Q(name__startswith="eval_")
        )
    series: dict[str, list] = {name: [] for name in names}
    for name, step, value in points.order_by("step").values_list("name", "step", "value"):
        series[name].append((step, value))
    return series


def job_progress(job: Job) -> dict:
    """Step, total, fraction and an ETA: the training child's own (steady-state step times, peftcore.loop.StepClock)
    less the time since it was reported; before it has one, from the rate so far (None until there is a rate)."""
    from django.utils import timezone

    total, step = job.progress_total or 0, job.progress_step or 0
    fraction = min(1.0, step / total) if total else (1.0 if job.status == Job.Status.SUCCEEDED else 0.0)
    eta = None
    if job.status == Job.Status.RUNNING and job.eta_seconds is not None and job.heartbeat_at:
        eta = max(0.0, job.eta_seconds - (timezone.now() - job.heartbeat_at).total_seconds())
    elif job.status == Job.Status.RUNNING and job.started_at and step and total:
        # run_seconds is training time across attempts (a resumed job's wait in the queue does not count)
        elapsed = job.run_seconds or (timezone.now() - job.started_at).total_seconds()
        eta = max(0.0, elapsed / step * (total - step))
    return {"step": step, "total": total, "fraction": round(fraction, 4), "eta_seconds": eta}


def token_stats_summary(stats, max_length: int | None) -> dict | None:
    """{rows, p50, p95, max, max_length, truncated_rows, truncated_share, warning} of a counted TokenStats,
    {"error": why} when counting failed, None while a worker counts."""
    from peftcore.token_lengths import summarise, truncation_warning

    if stats.result is None:
        return None
    if "error" in stats.result:
        return {"error": stats.result["error"]}
    chosen = None
    if max_length is None:  # left empty: judge the length the studio would choose (peftcore.defaults)
        from peftcore.defaults import auto_max_length
        from peftcore.token_lengths import sft_check

        p95 = summarise(stats.result["histogram"]).get("p95")
        if p95 is not None:
            keep = sft_check(stats.result, 1)["needed_length"] if stats.options else None
            max_length, _ = auto_max_length(p95, bool(stats.options), stats.result.get("model_limit"), keep)
            chosen = max_length
    summary = summarise(stats.result["histogram"], max_length)
    summary = {**summary, "chosen": chosen, "warning": truncation_warning(summary, stats.result.get("model_limit"))}
    if stats.options and max_length is not None:  # SFT: rows that cannot be read, answers cut away entirely
        from peftcore.token_lengths import sft_check

        summary["sft"] = sft_check(stats.result, max_length)
    return summary


PLAYGROUND_COMPARE_CHOICES = 50  # the newest adapters offered to write beside a job's in the playground


def job_task_groups(*, job: Job) -> list[str]:
    """The group values an adapter with a task per group has a task for, as its report lists them."""
    groups = EvalReport.objects.filter(job_id=job.pk).values_list("data__groups", flat=True).first() or []
    return [str(g["group"]) for g in groups if "task_id" in g]


def playground_compare_jobs(*, job: Job) -> QuerySet:
    """The team's other succeeded generation adapters on the job's base model, newest first: what the playground
    can write beside this job's (an SFT adapter next to the DPO one trained on top of it). None for a job that
    does not generate."""
    from peftcore.tasks import all_tasks

    generative = [task.id for task in all_tasks() if task.generative]
    if job.task not in generative:
        return Job.objects.none()
    others = Job.objects.filter(
        team_id=job.team_id,
        base_model_id=job.base_model_id,
        status=Job.Status.SUCCEEDED,
        task__in=generative,
        group_column="",
    )
    return others.exclude(pk=job.pk).only("id", "name", "method", "task").order_by("-id")


def playground_compare_choices(*, job: Job) -> list[Job]:
    """The newest of playground_compare_jobs, for the playground's menu (one query)."""
    return list(playground_compare_jobs(job=job)[:PLAYGROUND_COMPARE_CHOICES])


def job_base_is_cut(*, job: Job) -> bool:
    """Whether the job's run cut its base model's heads or channels (Light-PEFT; its report says so)."""
    return EvalReport.objects.filter(job=job, data__has_key="base_pruning").exists()


def playground_run_get(*, job: Job, run_id: int):
    """A playground run of a job the caller may already see (job_get scoped it to the team)."""
    from .models import PlaygroundRun

    return get_object_or_404(PlaygroundRun.objects.filter(job=job), pk=run_id)


# --- the queue ----------------------------------------------------------------------------------------------


def queued_in_order(*, limit: int | None = None) -> list[int]:
    """Queued job ids in the order workers take them (jobs/queue_order.py: fair share, then priority and age)."""
    if limit:
        return queue_order.queue_front(limit)
    places = queue_order.queue_places()
    return sorted(places, key=places.__getitem__)


def queue_positions(job_ids: Iterable[int] | None = None) -> dict[int, int]:
    """{job id: 1-based place in the queue} for the queued jobs among job_ids (None: every queued job), in one
    query however many jobs wait."""
    return queue_order.queue_places(job_ids)


def job_attempts(*, job: Job) -> QuerySet[JobAttempt]:
    return JobAttempt.objects.filter(job=job).order_by("number")


def job_running_on(*, worker: str) -> int | None:
    """The id of the job a worker (Celery node name) runs: runners lease jobs as "<node>/<pid>"."""
    return (
        Job.objects.filter(status=Job.Status.RUNNING, lease_owner__startswith=f"{worker}/")
        .values_list("pk", flat=True)
        .first()
    )


# --- webhooks (team admins) --------------------------------------------------------------------------------


def webhook_list(*, team: Team) -> list[Webhook]:
    """The team's webhooks, each with its latest delivery's status, code, error and time (one query)."""
    latest = WebhookDelivery.objects.filter(webhook=OuterRef("pk")).order_by("-created_at", "-pk")
    return list(
        Webhook.objects.filter(team=team)
        .annotate(
            last_status=Subquery(latest.values("status")[:1]),
            last_status_code=Subquery(latest.values("last_status_code")[:1]),
            last_error=Subquery(latest.values("last_error")[:1]),
            last_delivery_at=Subquery(latest.values("created_at")[:1]),
        )
        .order_by("created_at", "pk")
    )


def webhook_get(*, team: Team, webhook_id: int) -> Webhook:
    """A webhook of the team; another team's is a 404."""
    return get_object_or_404(Webhook, team=team, pk=webhook_id)


def webhook_deliveries(*, webhook: Webhook, limit: int = 50) -> QuerySet[WebhookDelivery]:
    return WebhookDelivery.objects.filter(webhook=webhook).order_by("-created_at", "-pk")[:limit]


def webhook_failed_deliveries(*, team: Team, limit: int = 20) -> list[WebhookDelivery]:
    """The team's deliveries that gave up, newest first, with their webhook's URL and job's name (one query)."""
    return list(
        WebhookDelivery.objects.filter(webhook__team=team, status=WebhookDelivery.Status.FAILED)
        .select_related("webhook", "job")
        .only(
            "event", "attempts", "status", "last_status_code", "last_error", "created_at", "webhook__url", "job__name"
        )
        .order_by("-created_at", "-pk")[:limit]
    )


def sweep_list(*, actor: Actor) -> QuerySet:
    return Sweep.objects.filter(team_id=actor.team_id).select_related("created_by").annotate(job_count=Count("jobs"))


def sweep_get(*, actor: Actor, sweep_id: int):
    from .models import Sweep

    return get_object_or_404(Sweep.objects.filter(team_id=actor.team_id), pk=sweep_id)


def sweep_rows(*, sweep) -> list[dict]:
    """Each job of the sweep with what the sweep page compares: its score (accuracy where the task has it, else the
    evaluation loss, lower better), trainable parameters and training time. Two queries whatever the size."""
    # sweep_id too: the related manager sets each job's sweep, and a deferred key would be read row by row
    jobs = list(
        sweep.jobs.order_by("pk").only(
            "pk", "sweep_id", "name", "method", "method_params", "params", "status", "metrics"
        )
    )
    reports = {job_id: (trainable, seconds) for job_id, trainable, seconds in _report_rows(sweep)}
    axes = [name for name in ("r", "learning_rate", "epochs") if name in sweep.axes]
    rows = []
    for job in jobs:
        metrics = job.metrics or {}
        metric, higher = ("accuracy", True) if "accuracy" in metrics else ("eval_loss", False)
        trainable, seconds = reports.get(job.pk, (None, None))
        values = {name: (job.method_params if name == "r" else job.params).get(name) for name in axes}
        rows.append(
            {
                "job": job,
                "values": values,
                "metric": metric,
                "score": metrics.get(metric),
                "higher_better": higher,
                "trainable": trainable,
                "seconds": seconds,
            }
        )
    scored = [row for row in rows if row["score"] is not None]
    if scored:
        best = max(scored, key=lambda row: row["score"] if row["higher_better"] else -row["score"])
        best["best"] = True
    return rows


def _report_rows(sweep) -> list[tuple]:
    return list(
        EvalReport.objects.filter(job__sweep=sweep)
        .annotate(
            trainable=Cast(KT("data__trainable_params"), IntegerField()),
            seconds=Cast(KT("data__train_seconds"), FloatField()),
        )
        .values_list("job_id", "trainable", "seconds")
    )
