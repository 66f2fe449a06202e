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
    """The job form filled as this job was (services.job_form_query)."""
    job = selectors.job_get(actor=request.actor, job_id=job_id)
    if job.combine:  # a combination again: the combine form with its parents, weights and combination
        recipe = job.combine
        query = {
            "ids": ",".join(map(str, recipe["parents"])),
            "weights": ",".join(f"{w:g}" for w in recipe["weights"]),
            "combination": recipe["combination"],
        }
        return redirect(f"{reverse('job-combine')}?{urlencode(query)}")
    query = {**services.job_form_query(job), "name": f"{job.name} (again)"[:200]}
    return redirect(f"{reverse('job-new')}?{urlencode(query)}")


@login_required
@require_POST
def job_preset_save(request, job_id: int):
    job = selectors.job_get(actor=request.actor, job_id=job_id)
    require(request.actor, job.team_id, Membership.Role.MEMBER)
    try:
        preset = services.job_preset_create(job=job, user=request.user, name=request.POST.get("name", ""))
    except ValidationFailed as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Saved as the preset '{preset.name}': the new-job form offers it.")
    return redirect("job-detail", job_id=job.pk)


@login_required
def job_preset_open(request, preset_id: int):
    preset = selectors.job_preset_get(actor=request.actor, preset_id=preset_id)
    return redirect(f"{reverse('job-new')}?{urlencode(preset.query)}")


@login_required
@require_POST
def job_preset_delete(request, preset_id: int):
    preset = selectors.job_preset_get(actor=request.actor, preset_id=preset_id)
    require(request.actor, preset.team_id, Membership.Role.MEMBER)
    services.job_preset_delete(preset=preset, user=request.user)
    messages.success(request, f"Deleted the preset '{preset.name}'.")
    return redirect("job-new")
