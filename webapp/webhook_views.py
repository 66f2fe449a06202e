"""Team admins add and delete the team's webhooks (the list is part of the team dashboard)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from jobs import notifications, selectors
from jobs.models import Webhook
from teams.models import Membership
from teams.permissions import require

from .team_forms import WebhookForm, errors_text


@login_required
@require_POST
def webhook_add(request):
    actor = require(request.actor, request.actor.team, Membership.Role.ADMIN)
    form = WebhookForm(request.POST, events=Webhook.EVENTS)
    try:
        if not form.is_valid():
            raise notifications.WebhookRefused(errors_text(form))
        webhook = notifications.webhook_create(
            actor=actor, url=form.cleaned_data["url"], events=form.cleaned_data["events"]
        )
    except notifications.WebhookRefused as exc:
        messages.error(request, f"Webhook not added: {exc}.")
        return redirect("team-dashboard")
    # The secret is shown on this response only, never stored in a message or the session.
    return render(request, "team/webhook_created.html", {"webhook": webhook}, status=201)


@login_required
@require_POST
def webhook_delete(request, webhook_id: int):
    actor = require(request.actor, request.actor.team, Membership.Role.ADMIN)
    webhook = selectors.webhook_get(team=actor.team, webhook_id=webhook_id)
    notifications.webhook_delete(actor=actor, webhook=webhook)
    messages.info(request, f"Webhook {webhook.url} deleted.")
    return redirect("team-dashboard")
