"""The job page's merged export: ask for it, follow it (htmx polls while a worker merges) and download it."""

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render

from jobs import selectors, services
from jobs.errors import ValidationFailed
from jobs.models import Artifact
from jobs.services.merged_exports import job_merge_refusal
from teams.audit import audit_record

from .uploads import artifact_response


def merged_context(job, export=None, error: str = "") -> dict:
    """What jobs/_merged.html shows: the export, its artifact once done, or why this job cannot be merged."""
    export = export or selectors.job_merged_export(job=job)
    done = export is not None and export.status == export.Status.DONE
    return {
        "job": job,
        "export": export,
        "merged": selectors.job_artifact(job=job, kind=Artifact.Kind.MERGED) if done else None,
        "refusal": job_merge_refusal(job),
        "error": error,
    }


@login_required
def job_merged(request, job_id: int):
    """GET: the export's state (polled while it runs); POST: ask for it (once; a failed one again)."""
    job = selectors.job_get(actor=request.actor, job_id=job_id)
    if request.method != "POST":
        return render(request, "jobs/_merged.html", merged_context(job))
    try:
        export = services.merged_export_request(actor=request.actor, job=job)
    except ValidationFailed as exc:
        return render(request, "jobs/_merged.html", merged_context(job, error=exc.message), status=400)
    return render(request, "jobs/_merged.html", merged_context(job, export))


@login_required
def job_merged_download(request, job_id: int):
    job = selectors.job_get(actor=request.actor, job_id=job_id)
    artifact = selectors.job_artifact(job=job, kind=Artifact.Kind.MERGED)
    if artifact is None:
        raise Http404("this job has no merged export yet")
    audit_record(team_id=job.team_id, user=request.user, action="merged.download", target=f"job {job.pk}")
    return artifact_response(artifact)
