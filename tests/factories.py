"""Datasets and jobs for tests, made the way the app makes them: through jobs.services, with the queue message a new
job sends on commit captured rather than sent. job_row writes a Job directly; use it only for a state that no
service produces (a job that has already ended, or one that must not be queued)."""

from pathlib import Path

from django.test import TestCase
from django.utils import timezone

from jobs import services
from jobs.models import Job

# The columns of the SST-2 sample (tests/conftest.py sst2_sample), which most test jobs train on.
SST2_COLUMNS = {"text_column": "sentence", "label_column": "label"}
ENDED = (Job.Status.SUCCEEDED, Job.Status.FAILED, Job.Status.CANCELLED)


def team_of(user):
    """The team of a test user (each belongs to one)."""
    return user.memberships.get().team


def dataset_from(user, path, *, name="sst2", filename="", team=None, **fields):
    """services.dataset_create of the file at path in the user's team. The uploaded file name defaults to the name
    with the path's suffix ("sst2.tsv")."""
    return services.dataset_create(
        team=team or team_of(user),
        user=user,
        name=name,
        path=path,
        filename=filename or name + Path(path).suffix,
        **fields,
    )


def job_for(user, dataset, model, *, capture=True, **fields):
    """services.job_create of a LoRA job on the SST-2 columns in the dataset's team (fields override or add any
    argument). The queue message is captured (as django_capture_on_commit_callbacks does) so no worker gets it;
    capture=False leaves it to the caller: a test that counts it, or a live worker that should receive it."""
    arguments = {
        "team": dataset.team,
        "user": user,
        "dataset": dataset,
        "base_model": model,
        "method": "lora",
        **SST2_COLUMNS,
        **fields,
    }
    if not capture:
        return services.job_create(**arguments)
    with TestCase.captureOnCommitCallbacks(execute=False):
        return services.job_create(**arguments)


def job_row(dataset, model, *, status=Job.Status.QUEUED, **fields):
    """A LoRA Job written directly in the dataset's team, by its uploader unless created_by is given; nothing is
    queued or checked. An ended job is stamped finished now unless finished_at is given."""
    if status in ENDED:
        fields.setdefault("finished_at", timezone.now())
    return Job.objects.create(
        **{
            "team": dataset.team,
            "created_by": dataset.created_by,
            "dataset": dataset,
            "base_model": model,
            "method": "lora",
            "status": status,
            **fields,
        }
    )


def sft_sibling(job, **fields):
    """Another succeeded SFT job on the same review/answer data and model as `job` (conftest's sft_job)."""
    return job_row(
        job.dataset,
        job.base_model,
        status=Job.Status.SUCCEEDED,
        task="sft",
        text_column="review",
        label_column="answer",
        **fields,
    )
