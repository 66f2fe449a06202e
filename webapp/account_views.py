"""The signed-in user's own things: which team they work in, and their API tokens."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from teams import selectors, services
from teams.errors import NotFound

from .team_forms import TokenForm, errors_text


@login_required
@require_POST
def team_switch(request):
    try:
        membership = services.team_select(user=request.user, team_id=int(request.POST.get("team", "")))
    except (ValueError, NotFound):
        raise Http404("no such team of yours") from None
    messages.info(request, f"You now work in {membership.team.name}.")
    # Back to a list page: an object page of the old team would be a 404 in the new one.
    target = request.POST.get("next", "")
    # A top-level path of this site only: not another host, not a URL name (job-detail would need an id).
    on_site = target.startswith("/") and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()})
    return redirect(target if on_site and "/" not in target.strip("/") else reverse("job-list"))


@never_cache  # the page that shows a new token must not come back from the browser's cache
@login_required
def tokens(request):
    """List, create and revoke the user's API tokens; a new token is shown once, on the page that made it."""
    memberships = selectors.user_memberships(user=request.user)
    new_token = None
    if request.method == "POST":
        form = TokenForm(request.POST)
        valid = form.is_valid()
        team = valid and next((m.team for m in memberships if m.team_id == form.cleaned_data["team"]), None)
        if not valid:
            messages.error(request, errors_text(form))
        elif team is None:
            messages.error(request, "choose one of your teams for the token")
        else:
            new_token = services.api_token_create(user=request.user, team=team, name=form.cleaned_data["name"])
    return render(
        request,
        "account/tokens.html",
        {"tokens": selectors.api_tokens_of(user=request.user), "memberships": memberships, "new_token": new_token},
    )


@login_required
@require_POST
def token_revoke(request, token_id: int):
    try:
        token = services.api_token_revoke(user=request.user, token_id=token_id)
    except NotFound:
        raise Http404("no such token of yours") from None
    messages.info(request, f"Token {token.hint}… revoked: it no longer works.")
    return redirect("account-tokens")
