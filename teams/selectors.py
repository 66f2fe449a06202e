"""Team reads: memberships, members, API tokens and invitations. Lookups by id are scoped to a team; another
team's object is a 404."""

from django.db.models import F, QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone

from .models import ApiToken, AuditEntry, Invitation, Membership, Team


def _memberships_in_working_order(user) -> QuerySet[Membership]:
    """The user's memberships, the one they work in first: the team switched to last, else the first joined."""
    return Membership.objects.filter(user=user).order_by(F("selected_at").desc(nulls_last=True), "created_at", "pk")


def working_membership(*, user) -> Membership | None:
    """The user's membership (team and role) in the team they work in; None if they belong to no team."""
    return _memberships_in_working_order(user).select_related("team").first()


def membership_in(*, user, team_id: int) -> Membership | None:
    """The user's membership in one team, or None."""
    return Membership.objects.filter(user=user, team_id=team_id).select_related("team").first()


def user_memberships(*, user) -> list[Membership]:
    """Every team the user belongs to (for the team switcher), the one they work in first."""
    return list(_memberships_in_working_order(user).select_related("team")) if user.is_authenticated else []


def team_members(*, team: Team) -> QuerySet[Membership]:
    """The team's memberships with their users, by user name."""
    return Membership.objects.filter(team=team).select_related("user").order_by("user__username")


def member_get(*, team: Team, username: str | None = None, membership_id: int | None = None) -> Membership:
    """A membership of the team, by its user's name or its id; another team's is a 404."""
    lookup = {"user__username": username} if username is not None else {"pk": membership_id}
    return get_object_or_404(Membership.objects.filter(team=team).select_related("user", "team"), **lookup)


def is_member(*, team: Team, user) -> bool:
    return user.is_authenticated and Membership.objects.filter(team=team, user=user).exists()


def api_tokens_of(*, user, team: Team | None = None) -> QuerySet[ApiToken]:
    """The user's own API tokens with their teams (newest first); only those of `team` if given."""
    tokens = ApiToken.objects.filter(user=user).select_related("team").order_by("-created_at", "-pk")
    return tokens.filter(team=team) if team is not None else tokens


def invitations_pending(*, team: Team) -> QuerySet[Invitation]:
    """A team's invitations that can still be accepted (newest first)."""
    return Invitation.objects.filter(
        team=team, accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=timezone.now()
    ).select_related("created_by")


def invitation_get(*, team: Team, invitation_id: int) -> Invitation:
    """An invitation of the team; another team's is a 404."""
    return get_object_or_404(Invitation.objects.filter(team=team), pk=invitation_id)


def audit_entries(*, team: Team, limit: int = 100) -> list[AuditEntry]:
    """Who did what in the team, newest first."""
    return list(AuditEntry.objects.filter(team=team).select_related("user")[:limit])
