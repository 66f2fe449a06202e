"""Merged exports: a succeeded job's adapter folded into its base model by a worker, then downloaded."""

from datetime import datetime

from ninja import Router, Schema, Status

from jobs import selectors, services
from jobs.models import Artifact
from teams.audit import audit_record

from ..uploads import artifact_response
from .schemas import Detail, FieldErrors

router = Router(tags=["jobs"])


class MergedOut(Schema):
    status: str  # queued, running, done, failed
    message: str  # why it failed
    requested_at: datetime
    finished_at: datetime | None
    size_bytes: int | None  # the merged zip's, once done


def _out(export) -> dict:
    artifact = selectors.job_artifact(job=export.job, kind=Artifact.Kind.MERGED) if export.status == "done" else None
    return {
        "status": export.status,
        "message": export.message,
        "requested_at": export.requested_at,
        "finished_at": export.finished_at,
        "size_bytes": artifact.size_bytes if artifact else None,
    }


@router.post("/jobs/{job_id}/merged", response={202: MergedOut, 400: FieldErrors})
def merged_request(request, job_id: int):
    """Fold the job's adapter into its base model (a worker builds one safetensors model folder, with a model card
    and, for SFT, an Ollama Modelfile). Asking again returns the export already made or under way."""
    job = selectors.job_get(actor=request.actor, job_id=job_id)
    return Status(202, _out(services.merged_export_request(actor=request.actor, job=job)))


@router.get("/jobs/{job_id}/merged", response={200: MergedOut, 404: Detail})
def merged_status(request, job_id: int):
    export = selectors.job_merged_export(job=selectors.job_get(actor=request.actor, job_id=job_id))
    if export is None:
        return Status(404, {"detail": f"job {job_id} has no merged export; POST to this address to make one"})
    return _out(export)


@router.get("/jobs/{job_id}/merged/download", response={404: Detail}, url_name="job_merged_download")
def merged_download(request, job_id: int):
    job = selectors.job_get(actor=request.actor, job_id=job_id)
    artifact = selectors.job_artifact(job=job, kind=Artifact.Kind.MERGED)
    if artifact is None:
        return Status(404, {"detail": f"job {job.pk} has no merged export yet (see GET /jobs/{job.pk}/merged)"})
    audit_record(team_id=job.team_id, user=request.user, action="merged.download", target=f"job {job.pk}")
    return artifact_response(artifact)
