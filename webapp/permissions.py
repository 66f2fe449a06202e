"""What each team role may do. Viewers read; members create datasets and jobs (and cancel, resume and try
them); admins also manage members, quotas and models; owners also manage admins and delete the team."""

from django.core.exceptions import PermissionDenied

from .models import Membership

RANK = {Membership.Role.VIEWER: 0, Membership.Role.MEMBER: 1, Membership.Role.ADMIN: 2, Membership.Role.OWNER: 3}
NEEDED = {
    "read": Membership.Role.VIEWER,
    "write": Membership.Role.MEMBER,  # datasets, jobs, cancel, resume, playground
    "manage": Membership.Role.ADMIN,  # members (up to admin), quotas, models, the dashboard
    "own": Membership.Role.OWNER,  # admins and owners, deleting the team
}
WHAT = {"write": "create or change datasets and jobs", "manage": "manage the team",
        "own": "manage the team's admins"}


class RoleRefused(PermissionDenied):
    pass


def allowed(role: str, action: str) -> bool:
    return RANK.get(role, -1) >= RANK[NEEDED[action]]


def require_in(user, team_id: int, action: str) -> Membership:
    """The user's membership in the team that owns an object, if its role allows `action`."""
    from jobs.selectors import membership_in

    membership = membership_in(user=user, team_id=team_id)
    require(membership, action)
    return membership


def require(membership: Membership | None, action: str) -> None:
    """Raise RoleRefused (HTTP 403) with what the role lacks and whom to ask."""
    if membership is None:
        raise RoleRefused("your account belongs to no team; ask an admin to add you to one")
    if not allowed(membership.role, action):
        raise RoleRefused(f"a {membership.role} of {membership.team.name} cannot {WHAT[action]}; ask an admin of the "
                          f"team for the {NEEDED[action]} role")


def require_here(user, action: str) -> Membership:
    """The user's membership in the team they work in (a token's own team), if its role allows `action`."""
    from jobs.selectors import membership_for_user

    membership = membership_for_user(user)
    require(membership, action)
    return membership
