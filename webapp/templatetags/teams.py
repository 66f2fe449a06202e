"""The team part of the top bar: the team the user works in, a switcher when they have several, and the Team
link only for those whose role may open the dashboard."""

from django import template

from jobs.selectors import user_memberships
from webapp.permissions import allowed

register = template.Library()


@register.inclusion_tag("_team_nav.html", takes_context=True)
def team_nav(context):
    request = context["request"]
    memberships = user_memberships(user=request.user)  # one query per page
    current = memberships[0] if memberships else None
    return {"current": current, "memberships": memberships, "csrf_token": context.get("csrf_token"),
            "may_manage": current is not None and allowed(current.role, "manage"), "path": request.path}
