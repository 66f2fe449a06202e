"""Writes for the playground: texts to try on a finished adapter, answered by a worker."""

from django.conf import settings

from peftcore.formats import unstorable_text
from peftcore.tasks import get_task
from peftcore.tasks._base import PLAYGROUND_NEW_TOKENS

from .. import dispatch
from ..errors import ValidationFailed
from ..models import Job, PlaygroundRun
from .job_checks import GROUP_REFUSAL

PLAYGROUND_MAX_TEXTS = 32
PLAYGROUND_MAX_CHARS = 5000


def playground_run_create(*, job: Job, user, texts: list[str], options: dict | None = None) -> PlaygroundRun:
    """Queue texts to try on a succeeded job's adapter; a worker predicts (the web process loads no model).
    options (generation tasks): temperature, top_p, max_new_tokens, compare_base, compare_job (another job whose
    adapter writes beside this one); group: the group whose task answers (an adapter with a task per group)."""
    texts = [t for t in (str(t) for t in texts) if t.strip()]
    if job.status != Job.Status.SUCCEEDED:
        raise ValidationFailed(
            f"job #{job.pk} is {job.status}; only a succeeded job has an adapter to try",
            errors={"job": "not succeeded"},
        )
    group = _group(job, (options or {}).get("group"))
    if not texts:
        raise ValidationFailed("type a text to try", errors={"texts": "type a text to try"})
    if len(texts) > PLAYGROUND_MAX_TEXTS:
        raise ValidationFailed(
            f"at most {PLAYGROUND_MAX_TEXTS} texts at a time",
            errors={"texts": f"at most {PLAYGROUND_MAX_TEXTS} texts at a time"},
        )
    if problem := unstorable_text(texts, "a text"):
        raise ValidationFailed(problem.replace(" and upload again", ""), errors={"texts": problem})
    long = [i + 1 for i, t in enumerate(texts) if len(t) > PLAYGROUND_MAX_CHARS]
    if long:
        message = f"text {long[0]} is longer than {PLAYGROUND_MAX_CHARS:,} characters"
        raise ValidationFailed(message, errors={"texts": message})
    generative = get_task(job.task).generative
    if not generative and (options or {}).get("compare_job") not in (None, ""):
        message = "only a generation job's adapter writes beside another's; this job's adapter predicts labels"
        raise ValidationFailed(message, errors={"compare_job": message})
    options = generation_options(options or {}) if generative else {}
    if group is not None:
        options["group"] = group
    from ..selectors import job_base_is_cut  # as _compare_with: selectors read what services write

    if options.get("compare_base") and job_base_is_cut(job=job):
        message = (
            "this adapter was trained on a cut base model (Light-PEFT pruned its heads or channels), so with the "
            "adapter off it is the cut model, not the base model: untick the comparison with the base model"
        )
        raise ValidationFailed(message, errors={"compare_base": message})
    if options.get("compare_job"):
        options.update(_compare_with(job, options["compare_job"]))
    run = PlaygroundRun.objects.create(job=job, created_by=user, texts=texts, options=options)
    dispatch.publish_on_commit(dispatch.PLAYGROUND_PREDICT, run.pk)
    return run


def _group(job: Job, group) -> str | None:
    """The group whose task answers, for an adapter with a task per group (None for any other adapter); a group
    run's adapters are refused (they are many: GROUP_REFUSAL)."""
    if not job.group_column:
        return None
    if not job.task_per_group:
        raise ValidationFailed(f"job #{job.pk}: {GROUP_REFUSAL}", errors={"job": "group run"})
    from ..selectors import job_task_groups  # as _compare_with: selectors read what services write

    groups = job_task_groups(job=job)
    if group in (None, "") or str(group) not in groups:
        message = f"pick the {job.group_column} whose task answers: one of {', '.join(groups[:10]) or '(none)'}"
        raise ValidationFailed(message, errors={"group": message})
    return str(group)


GENERATION_LIMITS = {"temperature": (0.0, 2.0), "top_p": (0.01, 1.0), "max_new_tokens": (1, PLAYGROUND_NEW_TOKENS)}


def generation_options(raw: dict) -> dict:
    """Sampling settings checked and typed; ValidationFailed naming each bad one."""
    options, errors = {}, {}
    for key, (low, high) in GENERATION_LIMITS.items():
        value = raw.get(key)
        if value in (None, ""):
            continue
        try:
            number = int(value) if key == "max_new_tokens" else float(value)
        except (TypeError, ValueError):
            errors[key] = f"{key.replace('_', ' ')} must be a number from {low} to {high}"
            continue
        if not low <= number <= high:  # also refuses nan
            errors[key] = f"{key.replace('_', ' ')} must be from {low} to {high}"
        options[key] = number
    if errors:
        raise ValidationFailed("fix the generation settings named", errors=errors)
    options["compare_base"] = raw.get("compare_base") in (True, "on", "true", "1", 1)
    compare_job = raw.get("compare_job")
    if compare_job not in (None, ""):
        try:
            options["compare_job"] = int(compare_job)
        except (TypeError, ValueError):
            raise ValidationFailed(
                "the adapter to compare with must be a job number", errors={"compare_job": "not a job number"}
            ) from None
    return options


def _compare_with(job: Job, other_id: int) -> dict:
    """The options naming another adapter to write beside the job's: one of the team's succeeded generation jobs on
    the same base model (another team's job reads as missing, as everywhere)."""
    from ..selectors import playground_compare_jobs

    if other_id == job.pk:
        message = "compare with another job's adapter, not this job's own"
        raise ValidationFailed(message, errors={"compare_job": message})
    other = playground_compare_jobs(job=job).filter(pk=other_id).first()
    if other is None:
        message = (
            f"job #{other_id} is not one of this team's succeeded generation jobs on {job.base_model.name} "
            "(only an adapter on the same base model can write beside this one)"
        )
        raise ValidationFailed(message, errors={"compare_job": message})
    return {"compare_job": other.pk, "compare_name": f"#{other.pk} {other.name or other.method}"}


def playground_run_partial(*, run: PlaygroundRun, partial: dict) -> None:
    """The worker's text so far, while it writes (one UPDATE every half second at most)."""
    PlaygroundRun.objects.filter(pk=run.pk).update(partial=partial)


def playground_run_refresh(*, run: PlaygroundRun) -> PlaygroundRun:
    """Ask again for a run still pending after PLAYGROUND_RETRY_SECONDS (its message was lost)."""
    dispatch.ask_worker(run, False, settings.PLAYGROUND_RETRY_SECONDS, dispatch.PLAYGROUND_PREDICT)
    return run


def playground_run_set(*, run: PlaygroundRun, result: dict) -> None:
    PlaygroundRun.objects.filter(pk=run.pk).update(result=result)
