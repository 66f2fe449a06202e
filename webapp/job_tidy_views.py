"""Tidying jobs from their page: rename, delete an ended one, and start a new job with the same settings."""

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from jobs import selectors, services
from jobs.errors import ValidationFailed
from teams.models import Membership
from teams.permissions import require

from .forms import METHOD_PREFIX, TRAINING_PREFIX

FIELDS = ("task", "method", "text_column", "label_column", "input_column", "messages_column", "template")


@login_required
@require_POST
def job_rename(request, job_id: int):
    job = selectors.job_get(actor=request.actor, job_id=job_id)
    require(request.actor, job.team_id, Membership.Role.MEMBER)
    try:
        services.job_rename(job=job, user=request.user, name=request.POST.get("name", ""))
    except ValidationFailed as exc:
        messages.error(request, exc.message)
    return redirect("job-detail", job_id=job.pk)


@login_required
@require_POST
def job_delete(request, job_id: int):
    job = selectors.job_get(actor=request.actor, job_id=job_id)
    require(request.actor, job.team_id, Membership.Role.MEMBER)
    try:
        services.job_delete(job=job, user=request.user)
    except ValidationFailed as exc:
        messages.error(request, exc.message)
        return redirect("job-detail", job_id=job.pk)
    messages.success(request, f"Deleted job #{job.pk} '{job.name}' with its adapter and report.")
    return redirect("job-list")


@login_required
def job_again(request, job_id: int):
    """The job form filled as this job was: its data, model, method, columns and the settings its user typed.
    Settings the studio chose are left empty, so they adapt again to whatever changes."""
    job = selectors.job_get(actor=request.actor, job_id=job_id)
    query = {"dataset": job.dataset_id, "base_model": job.base_model_id, "name": f"{job.name} (again)"[:200]}
    if job.eval_dataset_id:
        query["eval_dataset"] = job.eval_dataset_id
    query.update({field: getattr(job, field) for field in FIELDS if getattr(job, field)})
    chosen = set(job.choices or {})
    for prefix, values, kind in (
        (TRAINING_PREFIX, job.params, "params"),
        (METHOD_PREFIX, job.method_params, "method_params"),
    ):
        for key, value in (values or {}).items():
            if value is None or value is False or f"{kind}.{key}" in chosen:
                continue  # empty, an unticked box, or the studio's own choice
            query[prefix + key] = "on" if value is True else value
    return redirect(f"{reverse('job-new')}?{urlencode(query)}")
