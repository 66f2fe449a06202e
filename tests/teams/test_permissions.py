"""The one role check, require(actor, team, role), and the acting context it reads."""

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied

from teams.actor import Actor, actor_for_user
from teams.errors import Forbidden
from teams.models import Membership, Team
from teams.permissions import require
from teams.services import api_token_authenticate, api_token_create, team_select

Role = Membership.Role


@pytest.fixture
def viewer(make_member):
    return make_member("vera", "Team A", role=Role.VIEWER)


def test_a_role_below_the_one_needed_is_refused_naming_the_role_to_ask_for(viewer, alice):
    member, looker = actor_for_user(alice), actor_for_user(viewer)
    assert require(member, member.team, Role.MEMBER) is member
    assert require(looker, looker.team_id, Role.VIEWER) is looker  # a team or its id
    with pytest.raises(
        Forbidden,
        match="a viewer of Team A cannot create or change datasets and jobs; ask an admin "
        "of the team for the member role",
    ):
        require(looker, looker.team, Role.MEMBER)
    with pytest.raises(Forbidden, match="a member of Team A cannot manage the team; .* for the admin role"):
        require(member, member.team, Role.ADMIN)
    assert issubclass(Forbidden, PermissionDenied)  # pages answer it with a 403 as they are


def test_another_team_or_no_team_is_refused(alice, bob):
    with pytest.raises(Forbidden, match="another team"):
        require(actor_for_user(alice), Team.objects.get(name="Team B"), Role.VIEWER)
    Membership.objects.filter(user=bob).delete()
    nobody = actor_for_user(bob)
    assert nobody.team is None and nobody.role is None
    with pytest.raises(Forbidden, match="belongs to no team"):
        require(nobody, nobody.team, Role.VIEWER)
    assert actor_for_user(AnonymousUser()).membership is None


def test_a_token_acts_in_its_own_team_whatever_its_user_switches_to(alice, make_member):
    raw = api_token_create(user=alice)
    make_member("carl", "Team C")
    team_c = Team.objects.get(name="Team C")
    Membership.objects.create(team=team_c, user=alice, role=Role.OWNER)
    team_select(user=alice, team_id=team_c.pk)
    assert actor_for_user(alice).team == team_c  # the pages follow the switch
    actor = api_token_authenticate(raw=raw)
    assert actor.team.name == "Team A" and actor.role == Role.MEMBER and actor.token.hint == raw[:8]
    assert actor == Actor(user=actor.user, membership=actor.membership, token=actor.token)
    with pytest.raises(AttributeError):  # frozen: the team acted in is fixed for the request
        actor.membership = None
    assert api_token_authenticate(raw=raw + "x") is None


def test_pages_get_the_actor_on_the_request(alice):
    from django.test import RequestFactory

    from webapp.middleware import ActorMiddleware

    request = RequestFactory().get("/")
    request.user = alice
    seen = {}
    ActorMiddleware(lambda r: seen.setdefault("actor", r.actor))(request)
    assert seen["actor"].team.name == "Team A" and seen["actor"].token is None
