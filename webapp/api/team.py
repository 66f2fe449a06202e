"""The team the token acts in: quotas and usage, deletion, usage per member and month, the audit log."""

from datetime import datetime
from typing import Any

from ninja import Field, Router, Schema, Status

from teams import selectors as teams_selectors
from teams.errors import Conflict, Refused
from teams.models import Membership
from teams.permissions import require

from .schemas import Detail

Role = Membership.Role

router = Router(tags=["team"])


class Quotas(Schema):
    max_concurrent_jobs: int | None
    compute_hours_per_month: float | None
    max_storage_bytes: int | None


class TeamUsage(Schema):
    active_jobs: int
    compute_hours_this_month: float
    storage_bytes: dict[str, int] = Field(description="datasets, adapters, checkpoints")


class TeamOut(Schema):
    id: int
    name: str
    role: str = Field(description="your role: viewer, member, admin or owner")
    quotas: Quotas
    usage: TeamUsage


class UsageRow(Schema):
    month: datetime
    member: str | None
    device: str
    jobs: int
    seconds: float


class AuditOut(Schema):
    created_at: datetime
    user: str | None
    action: str
    target: str
    detail: dict[str, Any]


@router.get("/team", response=TeamOut)
def team_detail(request):
    """The team you work in, your role, its quotas and what it uses of them."""
    from jobs import quotas

    actor = require(request.actor, request.actor.team, Role.VIEWER)
    team = actor.team
    return {
        "id": team.pk,
        "name": team.name,
        "role": actor.role,
        "quotas": {name: getattr(team, name) for name in Quotas.model_fields},
        "usage": {
            "active_jobs": quotas.active_jobs(team.pk),
            "compute_hours_this_month": round(quotas.compute_seconds_this_month(team.pk) / 3600, 4),
            "storage_bytes": quotas.storage_used(team.pk),
        },
    }


@router.delete("/team", response={204: None, 400: Detail, 409: Detail})
def team_delete(request, confirm: str):
    """Delete this token's team with everything in it (owners). `confirm` must be the team's name; refused
    (409) while a job is queued or running."""
    from jobs.services import team_delete as delete

    owner = require(request.actor, request.actor.team, Role.OWNER)
    try:
        delete(actor=owner, confirm_name=confirm)
    except Refused as exc:
        return Status(409 if isinstance(exc, Conflict) else 400, {"detail": str(exc)})
    return Status(204, None)


@router.get("/team/usage", response=list[UsageRow])
def team_usage(request):
    """Training time per member, device and month (admins)."""
    from jobs.dashboard import usage_by_member_month

    team = require(request.actor, request.actor.team, Role.ADMIN).team
    return [
        {
            "month": r["month"],
            "member": r["created_by__username"],
            "device": r["device"],
            "jobs": r["jobs"],
            "seconds": r["seconds"] or 0,
        }
        for r in usage_by_member_month(team=team, months=12)
    ]


@router.get("/team/audit", response=list[AuditOut])
def team_audit(request, limit: int = 100):
    """Who did what, newest first (admins)."""
    team = require(request.actor, request.actor.team, Role.ADMIN).team
    entries = teams_selectors.audit_entries(team=team, limit=max(1, min(limit, 1000)))
    return [
        {
            "created_at": e.created_at,
            "user": e.user.username if e.user else None,
            "action": e.action,
            "target": e.target,
            "detail": e.detail,
        }
        for e in entries
    ]


# Tokens and invitations live in their own module; mounted last so every path above keeps its place.
