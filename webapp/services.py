"""Writes for teams, users and API tokens."""

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from .audit import audit_record
from .models import ApiToken, Membership, Team, hash_token


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
    from jobs.selectors import membership_for_user, membership_in

    membership = membership_in(user=user, team_id=team.pk) if team is not None else membership_for_user(user)
    if membership is None:
        raise TeamChangeRefused(f"{user.username} is not a member of {team.name if team else 'any team'}; a token "
                                "works in one of its user's teams")
    raw = ApiToken.new_raw()
    with transaction.atomic():
        ApiToken.objects.create(user=user, team=membership.team, name=name[:100], key_hash=hash_token(raw),
                                hint=raw[:8])
        audit_record(team_id=membership.team_id, user=user, action="token.create", target=f"token {raw[:8]}",
                     name=name[:100])
    return raw


def api_token_authenticate(*, raw: str):
    """The active user a raw token belongs to, carrying the token's team (selectors scope every read to it), or
    None if the token is unknown, revoked, or its user has left the token's team (since it was made)."""
    token = (ApiToken.objects.select_related("user")
             # The membership must predate the token: leaving the team kills its tokens for good, even if the
             # user is let back in later.
             .filter(key_hash=hash_token(raw), revoked_at__isnull=True, user__is_active=True,
                     team__memberships__user=F("user"), team__memberships__created_at__lte=F("created_at"))
             .first())
    if token is None:
        return None
    # Coarse stamp: one write an hour per token at most, not one per request.
    now = timezone.now()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 3600:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    user = token.user
    user.token_team_id = token.team_id
    return user


def api_token_revoke(*, user, token_id: int, team_id: int | None = None) -> ApiToken:
    """Revoke one of the user's own tokens, in team_id if given (another user's or team's token is not found)."""
    tokens = ApiToken.objects.filter(user=user, pk=token_id)
    token = (tokens.filter(team_id=team_id) if team_id is not None else tokens).first()
    if token is None:
        raise ApiToken.DoesNotExist(f"you have no token {token_id}")
    if token.revoked_at is None:
        with transaction.atomic():
            ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
            if token.team_id:
                audit_record(team_id=token.team_id, user=user, action="token.revoke", target=f"token {token.hint}")
        token.refresh_from_db()
    return token


def team_select(*, user, team_id: int) -> Membership:
    """Switch the team the user works in (one of theirs; another team is not found)."""
    membership = Membership.objects.select_related("team").filter(user=user, team_id=team_id).first()
    if membership is None:
        raise Membership.DoesNotExist(f"you are not a member of team {team_id}")
    membership.selected_at = timezone.now()
    membership.save(update_fields=["selected_at"])
    return membership


# --- team administration (webapp.permissions decides who may call these) ------------------------------------


class TeamChangeRefused(Exception):
    pass


def _may_touch(actor: Membership, role: str) -> None:
    """Admins manage members and viewers; only owners grant, change or remove admin and owner roles."""
    if role in (Membership.Role.ADMIN, Membership.Role.OWNER) and actor.role != Membership.Role.OWNER:
        raise TeamChangeRefused(f"only an owner of {actor.team.name} can manage {role}s")


def member_add(*, actor: Membership, username: str, role: str = Membership.Role.MEMBER) -> Membership:
    if role not in Membership.Role.values:
        raise TeamChangeRefused(f"unknown role {role!r}; choose one of {', '.join(Membership.Role.values)}")
    _may_touch(actor, role)
    user = get_user_model().objects.filter(username=username, is_active=True).first()
    if user is None:
        raise TeamChangeRefused(f"there is no user named {username!r}; they must have an account first")
    with transaction.atomic():
        membership, created = Membership.objects.get_or_create(team=actor.team, user=user, defaults={"role": role})
        if not created:
            raise TeamChangeRefused(f"{username} is already a {membership.role} of {actor.team.name}")
        audit_record(team_id=actor.team_id, user=actor.user, action="member.add", target=f"user {username}",
                     role=role)
    return membership


def member_set_role(*, actor: Membership, membership: Membership, role: str) -> Membership:
    if role not in Membership.Role.values:
        raise TeamChangeRefused(f"unknown role {role!r}; choose one of {', '.join(Membership.Role.values)}")
    _may_touch(actor, membership.role)
    _may_touch(actor, role)
    with transaction.atomic():
        _keep_an_owner(membership, leaving=role != Membership.Role.OWNER)
        before = membership.role
        Membership.objects.filter(pk=membership.pk).update(role=role)
        audit_record(team_id=actor.team_id, user=actor.user, action="member.role",
                     target=f"user {membership.user.username}", before=before, after=role)
    membership.role = role
    return membership


def member_remove(*, actor: Membership, membership: Membership) -> None:
    _may_touch(actor, membership.role)
    with transaction.atomic():
        _keep_an_owner(membership, leaving=True)
        membership.delete()
        audit_record(team_id=actor.team_id, user=actor.user, action="member.remove",
                     target=f"user {membership.user.username}", role=membership.role)


def _keep_an_owner(membership: Membership, *, leaving: bool) -> None:
    # Locks the team's owner rows, so two owners demoting each other at once cannot leave none.
    owners = list(Membership.objects.select_for_update().filter(team_id=membership.team_id,
                                                                role=Membership.Role.OWNER).values_list("pk",
                                                                                                      flat=True))
    if leaving and owners == [membership.pk]:
        raise TeamChangeRefused("a team needs an owner; make someone else owner first")


def team_set_quotas(*, actor: Membership, max_concurrent_jobs: int | None, compute_hours_per_month: float | None,
                    max_storage_bytes: int | None) -> Team:
    values = {"max_concurrent_jobs": max_concurrent_jobs, "compute_hours_per_month": compute_hours_per_month,
              "max_storage_bytes": max_storage_bytes}
    for name, value in values.items():
        if value is not None and value < 0:
            raise TeamChangeRefused(f"{name.replace('_', ' ')} cannot be negative (leave it empty for no limit)")
    with transaction.atomic():
        team = Team.objects.select_for_update().get(pk=actor.team_id)
        before = {name: getattr(team, name) for name in values}
        Team.objects.filter(pk=team.pk).update(**values)
        audit_record(team_id=team.pk, user=actor.user, action="quota.change", target=f"team {team.name}",
                     before=before, after=values)
    team.refresh_from_db()
    return team
