"""The team part of the top bar: the team the user works in, a switcher when they have several, and the Team
link only for those whose role may open the dashboard."""

from django import template

from teams.models import Membership
from teams.permissions import role_at_least
from teams.selectors import user_memberships

register = template.Library()


@register.inclusion_tag("_team_nav.html", takes_context=True)
def team_nav(context):
    request = context["request"]
    memberships = user_memberships(user=request.user)  # one query per page
    current = memberships[0] if memberships else None
    return {
        "current": current,
        "memberships": memberships,
        "csrf_token": context.get("csrf_token"),
        "may_manage": current is not None and role_at_least(current.role, Membership.Role.ADMIN),
        "path": request.path,
    }
