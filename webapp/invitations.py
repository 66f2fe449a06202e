"""Writes for invitations: a link (mailed too, when an address is given) that adds whoever opens it to a team.

The link is the secret: single use, expiring, revocable, stored hashed. Admins invite members and viewers;
only owners invite admins and owners (the same rule as changing roles).
"""

from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from .audit import audit_record
from .models import Invitation, Membership, hash_token
from .permissions import RANK
from .services import TeamChangeRefused, _may_touch

INVITATION_DAYS = 7


class InvitationRefused(Exception):
    """The link cannot be used; the message says why and what to do."""


def invitation_create(*, actor: Membership, role: str = Membership.Role.MEMBER, email: str = "",
                      link_for=None) -> tuple[Invitation, str]:
    """Create an invitation and return it with its raw secret (shown once). link_for(raw) -> absolute URL, used
    for the mail."""
    if role not in Membership.Role.values:
        raise TeamChangeRefused(f"unknown role {role!r}; choose one of {', '.join(Membership.Role.values)}")
    _may_touch(actor, role)
    raw = Invitation.new_raw()
    with transaction.atomic():
        invitation = Invitation.objects.create(
            team=actor.team, role=role, email=email.strip(), key_hash=hash_token(raw), created_by=actor.user,
            expires_at=timezone.now() + timedelta(days=INVITATION_DAYS))
        audit_record(team_id=actor.team_id, user=actor.user, action="invitation.create",
                     target=f"invitation {invitation.pk}", role=role, email=invitation.email)
    if invitation.email and link_for is not None:
        # After the commit and outside it: a slow or failing mail server must not lose the invitation, and
        # the admin still gets the link on screen to pass on by hand.
        send_mail(f"You are invited to {actor.team.name} on the fine-tuning studio",
                  f"{actor.user.username} invites you to join the team {actor.team.name} as {role}.\n\n"
                  f"Open this link within {INVITATION_DAYS} days to accept:\n{link_for(raw)}\n",
                  settings.DEFAULT_FROM_EMAIL, [invitation.email], fail_silently=True)
    return invitation, raw


def invitation_revoke(*, actor: Membership, invitation: Invitation) -> None:
    _may_touch(actor, invitation.role)
    with transaction.atomic():
        Invitation.objects.filter(pk=invitation.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
        audit_record(team_id=actor.team_id, user=actor.user, action="invitation.revoke",
                     target=f"invitation {invitation.pk}")


def invitation_open(raw: str) -> Invitation:
    """The invitation behind a link, if it can still be accepted."""
    invitation = Invitation.objects.select_related("team").filter(key_hash=hash_token(raw or "")).first()
    if invitation is None:
        raise InvitationRefused("this invitation link is not valid; ask a team admin for a new one")
    if invitation.revoked_at is not None:
        raise InvitationRefused("this invitation was withdrawn; ask a team admin for a new one")
    if invitation.accepted_at is not None:
        raise InvitationRefused("this invitation has already been used; ask a team admin for a new one")
    if invitation.expires_at <= timezone.now():
        raise InvitationRefused("this invitation has expired; ask a team admin for a new one")
    return invitation


def invitation_accept(*, raw: str, user) -> Membership:
    """Join the invitation's team in its role and switch to it. Single use even when two people open the same
    link at once (the row is locked)."""
    with transaction.atomic():
        Invitation.objects.select_for_update().get(pk=invitation_open(raw).pk)
        invitation = invitation_open(raw)  # read again under the lock: someone may have just used it
        # The link grants what its creator may grant now: one who was removed or demoted since cannot use an
        # old link to come back (or let anyone in) with the old powers.
        creator = Membership.objects.filter(team=invitation.team, user_id=invitation.created_by_id).select_related(
            "team").first()
        try:
            if creator is None or RANK[creator.role] < RANK[Membership.Role.ADMIN]:
                raise TeamChangeRefused("no longer an admin")
            _may_touch(creator, invitation.role)
        except TeamChangeRefused:
            raise InvitationRefused("whoever made this invitation can no longer grant it; ask a team admin for a "
                                    "new one") from None
        if Membership.objects.filter(team=invitation.team, user=user).exists():
            raise InvitationRefused(f"you are already a member of {invitation.team.name}")
        now = timezone.now()
        membership = Membership.objects.create(team=invitation.team, user=user, role=invitation.role,
                                               selected_at=now)
        Invitation.objects.filter(pk=invitation.pk).update(accepted_at=now, accepted_by=user)
        audit_record(team_id=invitation.team_id, user=user, action="invitation.accept",
                     target=f"user {user.username}", role=invitation.role, invitation=invitation.pk)
    return membership


def invitation_sign_up(*, raw: str, username: str, password: str, email: str = ""):
    """Create an account for someone invited who has none, and accept the invitation with it, all or nothing."""
    with transaction.atomic():
        invitation_open(raw)
        try:
            with transaction.atomic():
                user = get_user_model().objects.create_user(username=username, password=password, email=email)
        except IntegrityError:
            raise InvitationRefused(f"the user name {username!r} is taken; choose another, or sign in if it is "
                                    "yours") from None
        invitation_accept(raw=raw, user=user)
    return user
