"""Who acts, and in which team: built once per request and handed to selectors and services, instead of riding
on the user object.

Pages act in the team the user switched to last (webapp.middleware builds it from the session's user); the API
acts in the bearer token's own team, whatever the user switches to (teams.services.api_token_authenticate).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .models import ApiToken, Membership, Team
from .selectors import working_membership


@dataclass(frozen=True)
class Actor:
    user: Any  # the auth user (AnonymousUser on pages nobody signed in to)
    membership: Membership | None = None  # in the team acted in; None: the user belongs to no team
    token: ApiToken | None = None  # the API token the request came with; None on pages

    @classmethod
    def of(cls, membership: Membership, token: ApiToken | None = None) -> Actor:
        """The member acting in their membership's team (scripts and tests; requests use the builders)."""
        return cls(user=membership.user, membership=membership, token=token)

    @property
    def team(self) -> Team | None:
        return self.membership.team if self.membership is not None else None

    @property
    def team_id(self) -> int | None:
        return self.membership.team_id if self.membership is not None else None

    @property
    def role(self) -> str | None:
        return self.membership.role if self.membership is not None else None


def actor_for_user(user) -> Actor:
    """A signed-in user acting in the team they work in (switched to last, else first joined)."""
    return Actor(user=user, membership=working_membership(user=user) if user.is_authenticated else None)
