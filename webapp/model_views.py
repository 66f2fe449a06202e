"""Team admins add and remove their team's base models (the dashboard's "Base models" section)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from jobs import selectors, services
from jobs.errors import Refused
from teams.models import Membership
from teams.permissions import require

from .team_forms import ModelAddForm, errors_text


def _back():
    return redirect(reverse("team-dashboard") + "#models")


@login_required
@require_POST
def model_add(request):
    actor = require(request.actor, request.actor.team, Membership.Role.ADMIN)
    form = ModelAddForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"The model was not added: {errors_text(form)}.")
        return _back()
    try:
        model = services.base_model_add(actor=actor, **form.cleaned_data)
    except services.ValidationFailed as exc:
        messages.error(
            request, "; ".join(f"{field}: {message}" for field, message in exc.errors.items()) or exc.message
        )
    else:
        pinned = f" pinned to commit {model.revision[:12]}" if model.revision else ""
        messages.info(request, f"Added '{model.name}'{pinned}.")
    return _back()


@login_required
@require_POST
def model_remove(request, model_id: int):
    actor = require(request.actor, request.actor.team, Membership.Role.ADMIN)
    model = selectors.team_base_model_get(team=actor.team, model_id=model_id)
    try:
        services.base_model_remove(actor=actor, model=model)
    except Refused as exc:
        messages.error(request, str(exc))
    else:
        messages.info(request, f"Removed '{model.name}'.")
    return _back()
