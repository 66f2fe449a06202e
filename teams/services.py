"""Writes for teams: teams, users, API tokens, the team a user works in, members, quotas and invitations.

Callers check the actor's role first (teams.permissions.require); these hold the rules past the role: admins
manage members and viewers, only owners manage admins and owners, a team keeps an owner. An invitation is a link
(mailed too, when an address is given) that adds whoever opens it to a team: single use, expiring, revocable,
stored hashed, granting what its creator may grant.
"""

from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from .actor import Actor
from .audit import audit_record
from .errors import Conflict, Forbidden, NotFound, Refused
from .models import ApiToken, Invitation, Membership, Team, hash_token
from .permissions import role_at_least
from .selectors import membership_in, working_membership

INVITATION_DAYS = 7


def team_create(*, name: str) -> Team:
    team, _ = Team.objects.get_or_create(name=name)
    return team


def user_create(*, username: str, password: str, team: Team, role: str = Membership.Role.MEMBER, email: str = ""):
    with transaction.atomic():
        user = get_user_model().objects.create_user(username=username, password=password, email=email)
        Membership.objects.create(team=team, user=user, role=role)
    return user


def api_token_create(*, user, team: Team | None = None, name: str = "") -> str:
    """Create a token for one of the user's teams (default: the team they work in) and return it raw: this is
    the only time it exists unhashed."""
    membership = membership_in(user=user, team_id=team.pk) if team is not None else working_membership(user=user)
    if membership is None:
        raise Refused(
            f"{user.username} is not a member of {team.name if team else 'any team'}; a token works in one "
            "of its user's teams"
        )
    raw = ApiToken.new_raw()
    with transaction.atomic():
        ApiToken.objects.create(
            user=user, team=membership.team, name=name[:100], key_hash=hash_token(raw), hint=raw[:8]
        )
        audit_record(
            team_id=membership.team_id, user=user, action="token.create", target=f"token {raw[:8]}", name=name[:100]
        )
    return raw


def api_token_authenticate(*, raw: str) -> Actor | None:
    """The actor a raw token stands for: its active user, acting in the token's team (and only there), or None if
    the token is unknown, revoked, or its user has left the token's team (since it was made)."""
    token = (
        ApiToken.objects
        # The membership must predate the token: leaving the team kills its tokens for good, even if the
        # user is let back in later.
        .filter(
            key_hash=hash_token(raw),
            revoked_at__isnull=True,
            user__is_active=True,
            team__memberships__user=F("user"),
            team__memberships__created_at__lte=F("created_at"),
        ).first()
    )
    if token is None:
        return None
    membership = (
        Membership.objects.select_related("team", "user").filter(team_id=token.team_id, user_id=token.user_id).first()
    )
    if membership is None:  # the member left between the two reads
        return None
    # Coarse stamp: one write an hour per token at most, not one per request.
    now = timezone.now()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 3600:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return Actor(user=membership.user, membership=membership, token=token)


def api_token_revoke(*, user, token_id: int, team_id: int | None = None) -> ApiToken:
    """Revoke one of the user's own tokens, in team_id if given (another user's or team's token is not found)."""
    tokens = ApiToken.objects.filter(user=user, pk=token_id)
    token = (tokens.filter(team_id=team_id) if team_id is not None else tokens).first()
    if token is None:
        raise NotFound(f"you have no token {token_id}")
    if token.revoked_at is None:
        with transaction.atomic():
            ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
            if token.team_id:
                audit_record(team_id=token.team_id, user=user, action="token.revoke", target=f"token {token.hint}")
        token.refresh_from_db()
    return token


def team_select(*, user, team_id: int) -> Membership:
    """Switch the team the user works in (one of theirs; another team is not found)."""
    membership = membership_in(user=user, team_id=team_id)
    if membership is None:
        raise NotFound(f"you are not a member of team {team_id}")
    membership.selected_at = timezone.now()
    membership.save(update_fields=["selected_at"])
    return membership


# --- team administration (the caller has checked the actor is an admin: teams.permissions.require) ----------


def _known_role(role: str) -> None:
    if role not in Membership.Role.values:
        raise Refused(f"unknown role {role!r}; choose one of {', '.join(Membership.Role.values)}")


def _may_touch(actor, role: str) -> None:
    """Admins manage members and viewers; only owners grant, change or remove admin and owner roles. `actor` is an
    Actor or a Membership."""
    if role in (Membership.Role.ADMIN, Membership.Role.OWNER) and actor.role != Membership.Role.OWNER:
        raise Forbidden(f"only an owner of {actor.team.name} can manage {role}s")


def member_add(*, actor: Actor, username: str, role: str = Membership.Role.MEMBER) -> Membership:
    _known_role(role)
    _may_touch(actor, role)
    user = get_user_model().objects.filter(username=username, is_active=True).first()
    if user is None:
        raise Refused(f"there is no user named {username!r}; they must have an account first")
    with transaction.atomic():
        membership, created = Membership.objects.get_or_create(team=actor.team, user=user, defaults={"role": role})
        if not created:
            raise Conflict(f"{username} is already a {membership.role} of {actor.team.name}")
        audit_record(team_id=actor.team_id, user=actor.user, action="member.add", target=f"user {username}", role=role)
    return membership


def member_set_role(*, actor: Actor, membership: Membership, role: str) -> Membership:
    _known_role(role)
    _may_touch(actor, membership.role)
    _may_touch(actor, role)
    with transaction.atomic():
        _keep_an_owner(membership, leaving=role != Membership.Role.OWNER)
        before = membership.role
        Membership.objects.filter(pk=membership.pk).update(role=role)
        audit_record(
            team_id=actor.team_id,
            user=actor.user,
            action="member.role",
            target=f"user {membership.user.username}",
            before=before,
            after=role,
        )
    membership.role = role
    return membership


def member_remove(*, actor: Actor, membership: Membership) -> None:
    _may_touch(actor, membership.role)
    with transaction.atomic():
        _keep_an_owner(membership, leaving=True)
        membership.delete()
        audit_record(
            team_id=actor.team_id,
            user=actor.user,
            action="member.remove",
            target=f"user {membership.user.username}",
            role=membership.role,
        )


def _keep_an_owner(membership: Membership, *, leaving: bool) -> None:
    # Locks the team's owner rows, so two owners demoting each other at once cannot leave none.
    owners = list(
        Membership.objects.select_for_update()
        .filter(team_id=membership.team_id, role=Membership.Role.OWNER)
        .values_list("pk", flat=True)
    )
    if leaving and owners == [membership.pk]:
        raise Conflict("a team needs an owner; make someone else owner first")


def team_set_quotas(
    *,
    actor: Actor,
    max_concurrent_jobs: int | None,
    compute_hours_per_month: float | None,
    max_storage_bytes: int | None,
) -> Team:
    values = {
        "max_concurrent_jobs": max_concurrent_jobs,
        "compute_hours_per_month": compute_hours_per_month,
        "max_storage_bytes": max_storage_bytes,
    }
    for name, value in values.items():
        if value is not None and value < 0:
            raise Refused(f"{name.replace('_', ' ')} cannot be negative (leave it empty for no limit)")
    with transaction.atomic():
        team = Team.objects.select_for_update().get(pk=actor.team_id)
        before = {name: getattr(team, name) for name in values}
        Team.objects.filter(pk=team.pk).update(**values)
        audit_record(
            team_id=team.pk,
            user=actor.user,
            action="quota.change",
            target=f"team {team.name}",
            before=before,
            after=values,
        )
    team.refresh_from_db()
    return team


# --- invitations ------------------------------------------------------------------------------------------


class InvitationRefused(Conflict):
    """The link cannot be used (any more); the message says why and what to do."""


def _clean_email(email: str) -> str:
    """An optional address, checked as the database will store it (a 300-character one was a server error)."""
    email = (email or "").strip()
    longest = Invitation._meta.get_field("email").max_length
    if len(email) > longest:
        raise Refused(f"the email address is {len(email)} characters long; it can be at most {longest}")
    if email:
        try:
            validate_email(email)
        except ValidationError:
            raise Refused(f"{email!r} is not a valid email address; check it for typos") from None
    return email


def invitation_create(
    *, actor: Actor, role: str = Membership.Role.MEMBER, email: str = "", link_for=None
) -> tuple[Invitation, str]:
    """Create an invitation and return it with its raw secret (shown once). link_for(raw) -> absolute URL, used
    for the mail."""
    _known_role(role)
    _may_touch(actor, role)
    email = _clean_email(email)
    raw = Invitation.new_raw()
    with transaction.atomic():
        invitation = Invitation.objects.create(
            team=actor.team,
            role=role,
            email=email,
            key_hash=hash_token(raw),
            created_by=actor.user,
            expires_at=timezone.now() + timedelta(days=INVITATION_DAYS),
        )
        audit_record(
            team_id=actor.team_id,
            user=actor.user,
            action="invitation.create",
            target=f"invitation {invitation.pk}",
            role=role,
            email=invitation.email,
        )
    if invitation.email and link_for is not None:
        # After the commit and outside it: a slow or failing mail server must not lose the invitation, and
        # the admin still gets the link on screen to pass on by hand.
        send_mail(
            f"You are invited to {actor.team.name} on the fine-tuning studio",
            f"{actor.user.username} invites you to join the team {actor.team.name} as {role}.\n\n"
            f"Open this link within {INVITATION_DAYS} days to accept:\n{link_for(raw)}\n",
            settings.DEFAULT_FROM_EMAIL,
            [invitation.email],
            fail_silently=True,
        )
    return invitation, raw


def invitation_revoke(*, actor: Actor, invitation: Invitation) -> None:
    _may_touch(actor, invitation.role)
    with transaction.atomic():
        Invitation.objects.filter(pk=invitation.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
        audit_record(
            team_id=actor.team_id, user=actor.user, action="invitation.revoke", target=f"invitation {invitation.pk}"
        )


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
        creator = (
            Membership.objects.filter(team=invitation.team, user_id=invitation.created_by_id)
            .select_related("team")
            .first()
        )
        try:
            if creator is None or not role_at_least(creator.role, Membership.Role.ADMIN):
                raise Forbidden("no longer an admin")
            _may_touch(creator, invitation.role)
        except Forbidden:
            raise InvitationRefused(
                "whoever made this invitation can no longer grant it; ask a team admin for a new one"
            ) from None
        if Membership.objects.filter(team=invitation.team, user=user).exists():
            raise InvitationRefused(f"you are already a member of {invitation.team.name}")
        now = timezone.now()
        membership = Membership.objects.create(team=invitation.team, user=user, role=invitation.role, selected_at=now)
        Invitation.objects.filter(pk=invitation.pk).update(accepted_at=now, accepted_by=user)
        audit_record(
            team_id=invitation.team_id,
            user=user,
            action="invitation.accept",
            target=f"user {user.username}",
            role=invitation.role,
            invitation=invitation.pk,
        )
    return membership


def invitation_sign_up(*, raw: str, username: str, password: str, email: str = ""):
    """Create an account for someone invited who has none, and accept the invitation with it, all or nothing."""
    with transaction.atomic():
        invitation_open(raw)
        try:
            with transaction.atomic():
                user = get_user_model().objects.create_user(username=username, password=password, email=email)
        except IntegrityError:
            raise InvitationRefused(
                f"the user name {username!r} is taken; choose another, or sign in if it is yours"
            ) from None
        invitation_accept(raw=raw, user=user)
    return user
