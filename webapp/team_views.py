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

from .team_forms import MemberAddForm, MemberChangeForm, QuotaForm, TeamDeleteForm, errors_text

ADMIN = Membership.Role.ADMIN


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
    form = MemberAddForm(request.POST)
    if not form.is_valid():
        messages.error(request, errors_text(form))
        return redirect("team-dashboard")
    try:
        services.member_add(actor=actor, username=form.cleaned_data["username"], role=form.cleaned_data["role"])
    except Refused as exc:
        messages.error(request, str(exc))
    return redirect("team-dashboard")


@login_required
@require_POST
def member_change(request, membership_id: int):
    actor = require(request.actor, request.actor.team, ADMIN)
    membership = selectors.member_get(team=actor.team, membership_id=membership_id)
    form = MemberChangeForm(request.POST)
    if not form.is_valid():
        messages.error(request, errors_text(form))
        return redirect("team-dashboard")
    try:
        if form.cleaned_data["remove"]:
            services.member_remove(actor=actor, membership=membership)
        else:
            services.member_set_role(actor=actor, membership=membership, role=form.cleaned_data["role"])
    except Refused as exc:
        messages.error(request, str(exc))
    return redirect("team-dashboard")


@login_required
@require_POST
def quotas(request):
    actor = require(request.actor, request.actor.team, ADMIN)
    form = QuotaForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Quotas not saved: {errors_text(form)} (leave a field empty for no limit).")
        return redirect("team-dashboard")
    try:
        services.team_set_quotas(actor=actor, **form.quotas())
    except Refused as exc:
        messages.error(request, str(exc))
    else:
        messages.info(request, "Quotas saved.")
    return redirect("team-dashboard")


@login_required
@require_POST
def delete(request):
    from jobs.services import team_delete

    owner = require(request.actor, request.actor.team, Membership.Role.OWNER)
    form = TeamDeleteForm(request.POST)
    try:
        if not form.is_valid():
            raise Refused(f"type the team's name, {owner.team.name}, to confirm deleting it")
        team_delete(actor=owner, confirm_name=form.cleaned_data["confirm"])
    except Refused as exc:
        messages.error(request, str(exc))
        return redirect(reverse("team-dashboard") + "#delete-team")
    messages.info(request, f"{owner.team.name} and everything in it is deleted.")
    return redirect("job-list")
