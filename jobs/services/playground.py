"""Writes for the playground: texts to try on a finished adapter, answered by a worker."""

from django.conf import settings

from peftcore.formats import unstorable_text

from .. import dispatch
from ..errors import ValidationFailed
from ..models import Job, PlaygroundRun

PLAYGROUND_MAX_TEXTS = 32
PLAYGROUND_MAX_CHARS = 5000


def playground_run_create(*, job: Job, user, texts: list[str]) -> PlaygroundRun:
    """Queue texts to try on a succeeded job's adapter; a worker predicts (the web process loads no model)."""
    texts = [t for t in (str(t) for t in texts) if t.strip()]
    if job.status != Job.Status.SUCCEEDED:
        raise ValidationFailed(
            f"job #{job.pk} is {job.status}; only a succeeded job has an adapter to try",
            errors={"job": "not succeeded"},
        )
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
    run = PlaygroundRun.objects.create(job=job, created_by=user, texts=texts)
    dispatch.publish_on_commit(dispatch.PLAYGROUND_PREDICT, run.pk)
    return run


def playground_run_refresh(*, run: PlaygroundRun) -> PlaygroundRun:
    """Ask again for a run still pending after PLAYGROUND_RETRY_SECONDS (its message was lost)."""
    dispatch.ask_worker(run, False, settings.PLAYGROUND_RETRY_SECONDS, dispatch.PLAYGROUND_PREDICT)
    return run


def playground_run_set(*, run: PlaygroundRun, result: dict) -> None:
    PlaygroundRun.objects.filter(pk=run.pk).update(result=result)
