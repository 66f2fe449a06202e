"""The team admin dashboard and the team administration it offers (admins; owners for admin roles)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from jobs.dashboard import team_dashboard
from teams import selectors, services
from teams.errors import Refused
from teams.models import Membership
from teams.permissions import require
from teams.services import INVITATION_DAYS

ADMIN = Membership.Role.ADMIN


def _number(raw: str, kind=int):
    """A quota field: empty means no limit."""
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        return kind(raw)
    except ValueError:
        raise Refused(f"{raw!r} is not a number (leave the field empty for no limit)") from None


@login_required
def dashboard(request):
    actor = require(request.actor, request.actor.team, ADMIN)
    context = team_dashboard(team=actor.team)
    context.update(
        team=actor.team,
        me=actor.membership,
        roles=Membership.Role.values,
        series={"hours per day": context["daily_hours"]},
        invitations=selectors.invitations_pending(team=actor.team),
        invitation_days=INVITATION_DAYS,
        # A new invitation's link holds its secret: shown once, then gone from the session.
        invitation_link=request.session.pop("invitation_link", None),
    )
    return render(request, "team/dashboard.html", context)


@login_required
@require_POST
def member_add(request):
    actor = require(request.actor, request.actor.team, ADMIN)
    try:
        services.member_add(
            actor=actor,
            username=request.POST.get("username", "").strip(),
            role=request.POST.get("role", Membership.Role.MEMBER),
        )
    except Refused as exc:
        messages.error(request, str(exc))
    return redirect("team-dashboard")


@login_required
@require_POST
def member_change(request, membership_id: int):
    actor = require(request.actor, request.actor.team, ADMIN)
    membership = selectors.member_get(team=actor.team, membership_id=membership_id)
    try:
        if request.POST.get("remove"):
            services.member_remove(actor=actor, membership=membership)
        else:
            services.member_set_role(actor=actor, membership=membership, role=request.POST.get("role", ""))
    except Refused as exc:
        messages.error(request, str(exc))
    return redirect("team-dashboard")


@login_required
@require_POST
def quotas(request):
    actor = require(request.actor, request.actor.team, ADMIN)
    try:
        services.team_set_quotas(
            actor=actor,
            max_concurrent_jobs=_number(request.POST.get("max_concurrent_jobs")),
            compute_hours_per_month=_number(request.POST.get("compute_hours_per_month"), float),
            max_storage_bytes=(
                None if (gb := _number(request.POST.get("max_storage_gb"), float)) is None else int(gb * 1e9)
            ),
        )
    except Refused as exc:
        messages.error(request, str(exc))
    else:
        messages.info(request, "Quotas saved.")
    return redirect("team-dashboard")


@login_required
@require_POST
def delete(request):
    from jobs.errors import Refused
    from jobs.services import team_delete

    owner = require(request.actor, request.actor.team, Membership.Role.OWNER)
    try:
        team_delete(actor=owner, confirm_name=request.POST.get("confirm", ""))
    except Refused as exc:
        messages.error(request, str(exc))
        return redirect(reverse("team-dashboard") + "#delete-team")
    messages.info(request, f"{owner.team.name} and everything in it is deleted.")
    return redirect("job-list")
