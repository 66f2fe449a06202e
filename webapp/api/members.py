"""The team's members: list, add, change role, remove (admins; owners for admin and owner roles)."""

from typing import Literal

from ninja import Router, Schema, Status

from teams import selectors, services
from teams.errors import Refused
from teams.models import Membership
from teams.permissions import require

from .schemas import Detail, MemberOut

Role = Membership.Role

router = Router(tags=["members"])


@router.get("/team/members", response=list[MemberOut])
def team_members(request):
    team = require(request.actor, request.actor.team, Role.VIEWER).team
    return [
        {"username": m.user.username, "role": m.role, "joined_at": m.created_at}
        for m in selectors.team_members(team=team)
    ]


class MemberIn(Schema):
    username: str
    role: Literal["viewer", "member", "admin", "owner"] = "member"


@router.post("/team/members", response={201: MemberOut, 400: Detail})
def team_member_add(request, payload: MemberIn):
    """Add someone who has an account (admins; owners for admin and owner roles). No account yet? Invite them:
    POST /team/invitations."""
    from teams.services import member_add

    actor = require(request.actor, request.actor.team, Role.ADMIN)
    try:
        m = member_add(actor=actor, username=payload.username, role=payload.role)
    except Refused as exc:
        return Status(400, {"detail": str(exc)})
    return Status(201, {"username": m.user.username, "role": m.role, "joined_at": m.created_at})


class RoleIn(Schema):
    role: Literal["viewer", "member", "admin", "owner"]


@router.patch("/team/members/{username}", response={200: MemberOut, 400: Detail})
def member_set_role(request, username: str, payload: RoleIn):
    """Change a member's role (admins; owners for admin and owner roles; a team keeps an owner)."""
    actor = require(request.actor, request.actor.team, Role.ADMIN)
    membership = selectors.member_get(team=actor.team, username=username)
    try:
        m = services.member_set_role(actor=actor, membership=membership, role=payload.role)
    except Refused as exc:
        return Status(400, {"detail": str(exc)})
    return {"username": m.user.username, "role": m.role, "joined_at": m.created_at}


@router.delete("/team/members/{username}", response={204: None, 400: Detail})
def member_remove(request, username: str):
    """Remove a member: their tokens for this team stop working at once."""
    actor = require(request.actor, request.actor.team, Role.ADMIN)
    membership = selectors.member_get(team=actor.team, username=username)
    try:
        services.member_remove(actor=actor, membership=membership)
    except Refused as exc:
        return Status(400, {"detail": str(exc)})
    return Status(204, None)
