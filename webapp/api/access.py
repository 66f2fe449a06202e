"""Access: the caller's own tokens and the team's invitations. A token sees only tokens of its own team, and cannot make tokens: a stolen one could otherwise outlive its own revocation (new tokens are made on the Tokens page or with `manage.py studio_token`)."""

from datetime import datetime
from typing import Literal

from django.http import Http404
from django.urls import reverse
from ninja import Field, Router, Schema, Status
from ninja.errors import HttpError

from teams import selectors, services
from teams.errors import Forbidden, NotFound, Refused
from teams.models import ApiToken, Invitation, Membership
from teams.permissions import require

from .schemas import Detail

Role = Membership.Role

router = Router(tags=["access"])


class TokenOut(Schema):
    id: int
    name: str
    team: str
    hint: str = Field(description="the token's first characters, to tell tokens apart")
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class InvitationIn(Schema):
    role: Literal["viewer", "member", "admin", "owner"] = Field(
        "member", description="admins invite members and viewers; owners also admins and owners"
    )
    email: str = Field("", description="optional: the link is also mailed there")


class InvitationOut(Schema):
    id: int
    role: str
    email: str
    created_by: str | None
    expires_at: datetime


class NewInvitation(InvitationOut):
    url: str = Field(description="the link that joins the team: shown only in this answer, single use")


def _token_out(token: ApiToken) -> dict:
    return {
        "id": token.pk,
        "name": token.name,
        "team": token.team.name if token.team else "",
        "hint": token.hint,
        "created_at": token.created_at,
        "last_used_at": token.last_used_at,
        "revoked_at": token.revoked_at,
    }


@router.get("/tokens", response=list[TokenOut])
def token_list(request):
    """Your tokens in this token's team (revoked ones too, marked)."""
    actor = require(request.actor, request.actor.team, Membership.Role.VIEWER)
    return [_token_out(t) for t in selectors.api_tokens_of(user=actor.user, team=actor.team)]


@router.delete("/tokens/{token_id}", response={204: None, 404: Detail})
def token_revoke(request, token_id: int):
    """Revoke one of your tokens (this one too: it stops working at once)."""
    actor = require(request.actor, request.actor.team, Membership.Role.VIEWER)
    try:
        services.api_token_revoke(user=actor.user, token_id=token_id, team_id=actor.team_id)
    except NotFound:
        raise Http404("no such token of yours in this team") from None
    return Status(204, None)


def _invitation_out(invitation: Invitation) -> dict:
    return {
        "id": invitation.pk,
        "role": invitation.role,
        "email": invitation.email,
        "created_by": invitation.created_by.username if invitation.created_by else None,
        "expires_at": invitation.expires_at,
    }


@router.get("/team/invitations", response=list[InvitationOut])
def invitation_list(request):
    """Invitations of your team that can still be accepted (admins)."""
    actor = require(request.actor, request.actor.team, Role.ADMIN)
    return [_invitation_out(i) for i in selectors.invitations_pending(team=actor.team)]


@router.post("/team/invitations", response={201: NewInvitation, 400: Detail})
def invitation_create(request, payload: InvitationIn):
    """Invite someone (admins; owners for admin and owner roles). The answer carries the link, once."""
    actor = require(request.actor, request.actor.team, Role.ADMIN)

    def link_for(raw):
        return request.build_absolute_uri(reverse("invitation-accept", args=[raw]))

    try:
        invitation, raw = services.invitation_create(
            actor=actor, role=payload.role, email=payload.email, link_for=link_for
        )
    except Forbidden as exc:  # a role beyond the inviter's own; any other refusal is a 400 (app.py)
        raise HttpError(403, str(exc)) from None
    return Status(201, {**_invitation_out(invitation), "url": link_for(raw)})


@router.delete("/team/invitations/{invitation_id}", response={204: None, 403: Detail, 404: Detail})
def invitation_revoke(request, invitation_id: int):
    """Withdraw an invitation: its link stops working."""
    actor = require(request.actor, request.actor.team, Role.ADMIN)
    invitation = selectors.invitation_get(team=actor.team, invitation_id=invitation_id)
    try:
        services.invitation_revoke(actor=actor, invitation=invitation)
    except Refused as exc:
        return Status(403, {"detail": str(exc)})
    return Status(204, None)
