"""Invitations: admins create and withdraw them on the team dashboard; whoever opens a link joins the team,
signing up first if they have no account."""

from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model, login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.password_validation import validate_password
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from teams import selectors, services
from teams.errors import Refused
from teams.models import Membership
from teams.permissions import require
from teams.services import InvitationRefused

from .team_forms import InvitationForm, errors_text


def _link_for(request):
    return lambda raw: request.build_absolute_uri(reverse("invitation-accept", args=[raw]))


@login_required
@require_POST
def invitation_create(request):
    actor = require(request.actor, request.actor.team, Membership.Role.ADMIN)
    form = InvitationForm(request.POST)
    try:
        if not form.is_valid():
            raise Refused(errors_text(form))
        invitation, raw = services.invitation_create(actor=actor, **form.cleaned_data, link_for=_link_for(request))
    except Refused as exc:
        messages.error(request, str(exc))
        return redirect("team-dashboard")
    # The link holds the secret: it is shown this once (and mailed, when an address was given).
    request.session["invitation_link"] = _link_for(request)(raw)
    sent = f" and mailed to {invitation.email}" if invitation.email else ""
    messages.info(request, f"Invitation created{sent}; copy the link now, it is shown only once.")
    return redirect(reverse("team-dashboard") + "#invitations")


@login_required
@require_POST
def invitation_revoke(request, invitation_id: int):
    actor = require(request.actor, request.actor.team, Membership.Role.ADMIN)
    invitation = selectors.invitation_get(team=actor.team, invitation_id=invitation_id)
    try:
        services.invitation_revoke(actor=actor, invitation=invitation)
    except Refused as exc:
        messages.error(request, str(exc))
    return redirect(reverse("team-dashboard") + "#invitations")


class SignUpForm(forms.Form):
    username = forms.CharField(max_length=150, validators=[UnicodeUsernameValidator()])
    email = forms.EmailField(required=False)
    password = forms.CharField(widget=forms.PasswordInput, min_length=1)

    def clean(self):
        data = super().clean()
        if data.get("password"):
            # With the user's name and address, so a password that repeats them is refused too.
            candidate = get_user_model()(username=data.get("username", ""), email=data.get("email", ""))
            try:
                validate_password(data["password"], user=candidate)
            except forms.ValidationError as exc:
                self.add_error("password", exc)
        return data


def invitation_accept(request, token: str):
    """GET shows the team and role; POST joins (signed in) or signs up and joins (anonymous)."""
    try:
        invitation = services.invitation_open(token)
    except InvitationRefused as exc:
        return render(request, "team/invitation.html", {"refused": str(exc)}, status=410)
    form = SignUpForm(initial={"email": invitation.email})
    if request.method == "POST":
        try:
            if request.user.is_authenticated:
                services.invitation_accept(raw=token, user=request.user)
            else:
                form = SignUpForm(request.POST)
                if not form.is_valid():
                    return render(request, "team/invitation.html", {"invitation": invitation, "form": form}, status=400)
                user = services.invitation_sign_up(raw=token, **form.cleaned_data)
                login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        except InvitationRefused as exc:
            messages.error(request, str(exc))
            return render(request, "team/invitation.html", {"invitation": invitation, "form": form}, status=409)
        messages.info(
            request,
            f"Welcome to {invitation.team.name}: you are a {invitation.role} there, and it is "
            "now the team you work in.",
        )
        return redirect("job-list")
    member = selectors.is_member(team=invitation.team, user=request.user)
    return render(request, "team/invitation.html", {"invitation": invitation, "form": form, "member": member})
