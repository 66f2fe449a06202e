"""The team admin dashboard and the team administration it offers (admins; owners for admin roles)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from jobs import selectors
from jobs.dashboard import team_dashboard

from . import services
from .invitations import INVITATION_DAYS
from .models import Membership
from .permissions import require, require_here



def _number(raw: str, kind=int):
    """A quota field: empty means no limit."""
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        return kind(raw)
    except ValueError:
        raise services.TeamChangeRefused(f"{raw!r} is not a number (leave the field empty for no limit)") from None


@login_required
def dashboard(request):
    membership = require_here(request.user, "manage")
    context = team_dashboard(team=membership.team)
    context.update(team=membership.team, me=membership, roles=Membership.Role.values,
                   series={"hours per day": context["daily_hours"]},
                   invitations=selectors.invitations_pending(team=membership.team), invitation_days=INVITATION_DAYS,
                   # A new invitation's link holds its secret: shown once, then gone from the session.
                   invitation_link=request.session.pop("invitation_link", None))
    return render(request, "team/dashboard.html", context)


@login_required
@require_POST
def member_add(request):
    actor = require_here(request.user, "manage")
    try:
        services.member_add(actor=actor, username=request.POST.get("username", "").strip(),
                            role=request.POST.get("role", Membership.Role.MEMBER))
    except services.TeamChangeRefused as exc:
        messages.error(request, str(exc))
    return redirect("team-dashboard")


@login_required
@require_POST
def member_change(request, membership_id: int):
    actor = require_here(request.user, "manage")
    membership = get_object_or_404(Membership.objects.filter(team=actor.team).select_related("user"),
                                   pk=membership_id)
    try:
        if request.POST.get("remove"):
            services.member_remove(actor=actor, membership=membership)
        else:
            services.member_set_role(actor=actor, membership=membership, role=request.POST.get("role", ""))
    except services.TeamChangeRefused as exc:
        messages.error(request, str(exc))
    return redirect("team-dashboard")


@login_required
@require_POST
def quotas(request):
    actor = require_here(request.user, "manage")
    try:
        services.team_set_quotas(
            actor=actor, max_concurrent_jobs=_number(request.POST.get("max_concurrent_jobs")),
            compute_hours_per_month=_number(request.POST.get("compute_hours_per_month"), float),
            max_storage_bytes=(None if (gb := _number(request.POST.get("max_storage_gb"), float)) is None
                               else int(gb * 1e9)))
    except services.TeamChangeRefused as exc:
        messages.error(request, str(exc))
    else:
        messages.info(request, "Quotas saved.")
    return redirect("team-dashboard")


@login_required
@require_POST
def delete(request):
    from jobs.errors import Refused
    from jobs.services import team_delete

    owner = selectors.membership_for_user(request.user)
    require(owner, "own")
    try:
        team_delete(actor=owner, confirm_name=request.POST.get("confirm", ""))
    except Refused as exc:
        messages.error(request, str(exc))
        return redirect(reverse("team-dashboard") + "#delete-team")
    messages.info(request, f"{owner.team.name} and everything in it is deleted.")
    return redirect("job-list")
