"""What each team role may do, checked one way everywhere: require(actor, team, role).

Viewers read; members create datasets and jobs (and cancel, resume and try them); admins also manage members,
quotas, models and webhooks; owners also manage admins and delete the team.
"""

from .errors import Forbidden
from .models import Membership, Team

Role = Membership.Role
RANK = {Role.VIEWER: 0, Role.MEMBER: 1, Role.ADMIN: 2, Role.OWNER: 3}
# What a role below the one named cannot do, for the refusal's message.
WHAT = {
    Role.MEMBER: "create or change datasets and jobs",
    Role.ADMIN: "manage the team",
    Role.OWNER: "manage the team's admins",
}


def role_at_least(role: str | None, needed: str) -> bool:
    """Whether `role` ranks at or above `needed` (no role ranks below every role)."""
    return RANK.get(role, -1) >= RANK[needed]


def require(actor, team: Team | int | None, role: str):
    """The actor, if they act in `team` (a Team or its id: the team that owns what they touch) with at least
    `role`; else Forbidden (HTTP 403) saying what the role lacks and which role to ask for.

    `actor` is a teams.actor.Actor (anything with role, team and team_id will do). Objects reach callers through
    team-scoped selectors, so another team's object is a 404 before this runs; the team check only guards a
    wrong call."""
    if role not in RANK:
        raise ValueError(f"unknown role {role!r}; choose one of {', '.join(RANK)}")
    team_id = team.pk if isinstance(team, Team) else team
    if actor is None or actor.team_id is None or team_id is None:
        raise Forbidden("your account belongs to no team; ask an admin to add you to one")
    if actor.team_id != team_id:
        raise Forbidden("this belongs to another team than the one you work in; switch to that team first")
    if not role_at_least(actor.role, role):
        raise Forbidden(
            f"a {actor.role} of {actor.team.name} cannot {WHAT[role]}; ask an admin of the team for the {role} role"
        )
    return actor
