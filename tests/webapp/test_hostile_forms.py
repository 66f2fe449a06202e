"""Hostile values in every browser write of the team and account pages: each is an error message next to the
action, never a server error, and nothing is created or changed. (They were 500s when the views read
request.POST raw: NUL characters, numbers Postgres cannot store, infinities.)"""

import pytest
from django.test import Client

from jobs.models import BaseModel, Webhook
from teams.models import ApiToken, Invitation, Membership, Team

NUL = "a\x00b"
HUGE = ["1e300", "inf", "-inf", "nan", "99999999999999", "NaN", "1" * 400, "-1", "ten"]


@pytest.fixture
def owner(alice):
    Membership.objects.filter(user=alice).update(role=Membership.Role.OWNER)
    client = Client(raise_request_exception=False)
    client.force_login(alice)
    return client


def _quota_cases():
    for field in ("max_concurrent_jobs", "compute_hours_per_month", "max_storage_gb"):
        for value in HUGE:
            yield field, value


@pytest.mark.parametrize("field, value", list(_quota_cases()))
def test_quota_fields_refuse_numbers_that_are_not_quotas(owner, field, value):
    response = owner.post("/team/quotas/", {field: value}, follow=True)
    assert response.status_code == 200 and "Quotas not saved" in response.content.decode()
    team = Team.objects.get(name="Team A")
    assert (team.max_concurrent_jobs, team.compute_hours_per_month, team.max_storage_bytes) == (None, None, None)


@pytest.mark.parametrize(
    "url, data",
    [
        ("/team/members/", {"username": NUL, "role": "member"}),
        ("/team/members/", {"username": "x" * 5000, "role": "member"}),
        ("/team/members/", {"username": "bob", "role": NUL}),
        ("/account/tokens/", {"team": NUL, "name": "laptop"}),
        ("/account/tokens/", {"team": "1e300", "name": "laptop"}),
        ("/account/tokens/", {"team": "1", "name": NUL}),
        ("/team/webhooks/", {"url": "https://example.com/" + NUL, "events": ["failed"]}),
        ("/team/webhooks/", {"url": "https://example.com/x", "events": [NUL]}),
        ("/team/models/", {"name": NUL, "source": "owner/name"}),
        ("/team/models/", {"name": "m", "source": "x" * 5000}),
        ("/team/invitations/", {"email": NUL, "role": "member"}),
        ("/team/invitations/", {"email": "", "role": NUL}),
        ("/team/delete/", {"confirm": NUL}),
    ],
)
def test_nul_and_overlong_values_are_messages_not_server_errors(owner, alice, url, data):
    response = owner.post(url, data, follow=True)
    assert response.status_code == 200, response.status_code
    assert 'class="flash error"' in response.content.decode()
    assert not Webhook.objects.exists() and not Invitation.objects.exists()
    assert not BaseModel.objects.filter(team__isnull=False).exists()
    assert not ApiToken.objects.exists() and Team.objects.filter(name="Team A").exists()
    assert Membership.objects.filter(team__name="Team A").count() == 1


def test_the_member_role_form_refuses_a_role_that_is_not_one(owner, alice, make_member):
    bob = make_member("bob2", "Team A")
    membership = Membership.objects.get(user=bob)
    response = owner.post(f"/team/members/{membership.pk}/", {"role": NUL}, follow=True)
    assert response.status_code == 200 and Membership.objects.get(pk=membership.pk).role == "member"
