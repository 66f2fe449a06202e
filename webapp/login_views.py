"""Logging in and getting back in: Django's own views, with a limit per address on top of django-axes' per
(username, address) lockout, and the password-reset flow by e-mail.

axes counts failures per (username, address) row and locks the pair, so spraying one password over many
usernames from one address never trips it; here the failures of every username from one address within the
cool-off are summed, and past LOGIN_ADDRESS_FAILURE_LIMIT that address may not try any username."""

from axes.models import AccessAttempt
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.core.exceptions import PermissionDenied
from django.db.models import Sum
from django.shortcuts import render
from django.utils import timezone

from .client_ip import client_ip


def address_failures(address: str) -> int:
    """Failed logins from this address, over every username, within the cool-off."""
    since = timezone.now() - settings.AXES_COOLOFF_TIME
    total = AccessAttempt.objects.filter(ip_address=address, attempt_time__gte=since).aggregate(
        n=Sum("failures_since_start")
    )["n"]
    return total or 0


class AddressLimitBackend:
    """Before ModelBackend in AUTHENTICATION_BACKENDS: refuses every password login from an address over the limit, wherever
    the form is (the admin's login too); the studio's own login page answers 429 before it gets here."""

    def authenticate(self, request, **credentials):
        if request is not None and address_failures(client_ip(request)) >= settings.LOGIN_ADDRESS_FAILURE_LIMIT:
            raise PermissionDenied("too many failed logins from this address")
        return None  # no get_user: it never logs anyone in, so no session names it (force_login skips it too)


class LoginView(auth_views.LoginView):
    def post(self, request, *args, **kwargs):
        if address_failures(client_ip(request)) >= settings.LOGIN_ADDRESS_FAILURE_LIMIT:
            context = {
                "address_limit": settings.LOGIN_ADDRESS_FAILURE_LIMIT,
                "cooloff_minutes": round(settings.AXES_COOLOFF_TIME.total_seconds() / 60),
            }
            return render(request, "registration/locked.html", context, status=429)
        return super().post(request, *args, **kwargs)


class PasswordResetView(auth_views.PasswordResetView):
    """The same answer whether or not the address belongs to anyone (no account discovery); the link expires
    after PASSWORD_RESET_TIMEOUT and works once."""

    email_template_name = "registration/password_reset_email.txt"
    subject_template_name = "registration/password_reset_subject.txt"

    @property
    def extra_email_context(self):
        # The link points at the studio's configured address, never at whatever Host a request claimed.
        return {"base_url": settings.STUDIO_BASE_URL}


class PasswordResetDoneView(auth_views.PasswordResetDoneView):
    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), "reset_hours": round(settings.PASSWORD_RESET_TIMEOUT / 3600)}


class LogoutView(auth_views.LogoutView):
    """Logging out lands on the login page saying so (issue 20, item 8), not on a bare form. The message rides
    in the messages cookie: the session it would otherwise live in has just been flushed."""

    def post(self, request, *args, **kwargs):
        response = super().post(request, *args, **kwargs)
        messages.info(request, "You are logged out. Log in again below; your team's jobs keep running.")
        return response
