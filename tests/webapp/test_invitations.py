"""Invitations: a link (mailed when an address is given) that adds one person to a team in a role; it expires,
can be withdrawn, works once, and only owners may invite admins and owners."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from teams.actor import Actor
from teams.models import AuditEntry, Invitation, Membership, Team
from teams.services import InvitationRefused, invitation_accept, invitation_create


@pytest.fixture
def admin(make_member):
    return make_member("ada", "Team A", role=Membership.Role.ADMIN)


def _browser(user=None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def _invite(client, **data) -> str:
    client.post("/team/invitations/", data)
    page = client.get("/team/").content.decode()
    return page.split('id="invitation-link"')[1].split("<code>")[1].split("</code>")[0]


def test_an_admin_invites_by_link_and_an_existing_user_joins_and_works_in_the_new_team(admin, bob):
    ada = _browser(admin)
    link = _invite(ada, role="viewer")
    assert link.startswith("http://testserver/invite/inv_")
    assert link not in ada.get("/team/").content.decode()  # shown once
    path = link.removeprefix("http://testserver")
    bobs = _browser(bob)
    assert "Join Team A" in bobs.get(path).content.decode()
    response = bobs.post(path)
    assert response.status_code == 302
    membership = Membership.objects.get(user=bob, team__name="Team A")
    assert membership.role == "viewer"
    assert "Team A · viewer" in bobs.get("/jobs/").content.decode()  # switched to the new team
    assert bobs.post(path).status_code == 410  # single use
    assert _browser(admin).get(path).status_code == 410
    assert AuditEntry.objects.filter(action="invitation.accept", team__name="Team A", user=bob).exists()


def test_someone_without_an_account_signs_up_from_the_link_and_nothing_is_half_done(admin):
    invitation, raw = invitation_create(actor=Actor.of(Membership.objects.get(user=admin)), email="new@example.com")
    anon = _browser()
    page = anon.get(f"/invite/{raw}/").content.decode()
    assert 'value="new@example.com"' in page and "Log in" in page
    weak = anon.post(f"/invite/{raw}/", {"username": "newbie", "email": "new@example.com", "password": "123"})
    assert weak.status_code == 400 and "too short" in weak.content.decode()
    taken = anon.post(f"/invite/{raw}/", {"username": "ada", "password": "a long passphrase 42"})
    assert taken.status_code == 409 and "is taken" in taken.content.decode()
    assert Invitation.objects.get(pk=invitation.pk).accepted_at is None  # still usable after the refusals
    response = anon.post(
        f"/invite/{raw}/", {"username": "newbie", "email": "new@example.com", "password": "a long passphrase 42"}
    )
    assert response.status_code == 302
    assert Membership.objects.get(user__username="newbie").team.name == "Team A"
    assert "newbie" in anon.get("/jobs/").content.decode()  # signed in


def test_an_emailed_invitation_sends_the_link(admin, mailoutbox):
    _browser(admin).post("/team/invitations/", {"email": "friend@example.com", "role": "member"})
    assert len(mailoutbox) == 1
    mail = mailoutbox[0]
    assert mail.to == ["friend@example.com"] and "Team A" in mail.subject
    link = next(word for word in mail.body.split() if "/invite/inv_" in word)
    assert _browser().get(link.removeprefix("http://testserver")).status_code == 200
    page = _browser(admin).get("/team/").content.decode()
    assert "friend@example.com" in page


def test_a_bad_email_address_is_refused_with_what_to_fix(admin):
    client = _browser(admin)
    response = client.post("/team/invitations/", {"email": "not-an-address", "role": "member"}, follow=True)
    assert "valid email" in response.content.decode()
    assert not Invitation.objects.exists()


def test_expired_and_withdrawn_links_say_so(admin, bob):
    actor = Actor.of(Membership.objects.get(user=admin))
    expired, raw_expired = invitation_create(actor=actor)
    Invitation.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    withdrawn, raw_withdrawn = invitation_create(actor=actor)
    assert _browser(admin).post(f"/team/invitations/{withdrawn.pk}/revoke/").status_code == 302
    bobs = _browser(bob)
    assert "expired" in bobs.get(f"/invite/{raw_expired}/").content.decode()
    assert "withdrawn" in bobs.post(f"/invite/{raw_withdrawn}/").content.decode()
    assert "not valid" in bobs.get("/invite/inv_made-up/").content.decode()
    assert not Membership.objects.filter(user=bob, team__name="Team A").exists()


def test_roles_limit_who_invites_whom(admin, alice, make_member):
    with pytest.raises(Exception, match="only an owner"):
        invitation_create(actor=Actor.of(Membership.objects.get(user=admin)), role="admin")
    member = _browser(alice)
    assert member.post("/team/invitations/", {"role": "member"}).status_code == 403
    owner = make_member("olga", "Team A", role=Membership.Role.OWNER)
    invitation, _ = invitation_create(actor=Actor.of(Membership.objects.get(user=owner)), role="admin")
    # An admin cannot withdraw an invitation to the admin role either.
    _browser(admin).post(f"/team/invitations/{invitation.pk}/revoke/")
    assert Invitation.objects.get(pk=invitation.pk).revoked_at is None
    assert not Invitation.objects.filter(role="admin").exclude(created_by=owner).exists()


def test_another_teams_admin_cannot_withdraw_our_invitation(admin, make_member):
    invitation, _ = invitation_create(actor=Actor.of(Membership.objects.get(user=admin)))
    other = make_member("zed", "Team Z", role=Membership.Role.OWNER)
    assert _browser(other).post(f"/team/invitations/{invitation.pk}/revoke/").status_code == 404
    assert Invitation.objects.get(pk=invitation.pk).revoked_at is None


@pytest.mark.django_db(transaction=True)
def test_one_link_opened_by_two_people_at_once_adds_only_one(make_member):
    admin = make_member("ada", "Team A", role=Membership.Role.ADMIN)
    _, raw = invitation_create(actor=Actor.of(Membership.objects.get(user=admin)))
    people = [make_member(f"p{i}", f"Team P{i}") for i in range(6)]
    barrier, results = threading.Barrier(len(people)), []

    def accept(user):
        barrier.wait()
        try:
            invitation_accept(raw=raw, user=user)
            results.append("joined")
        except InvitationRefused:
            results.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=accept, args=(p,)) for p in people]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert sorted(results) == ["joined"] + ["refused"] * 5
    assert Membership.objects.filter(team__name="Team A").count() == 2


def test_the_api_invites_lists_and_withdraws(admin, alice):
    from tests.conftest import api_client

    api = api_client(admin)
    created = api.post("/api/v1/team/invitations", {"role": "viewer", "email": ""}, content_type="application/json")
    assert created.status_code == 201 and "/invite/inv_" in created.json()["url"]
    assert [i["role"] for i in api.get("/api/v1/team/invitations").json()] == ["viewer"]
    assert "url" not in api.get("/api/v1/team/invitations").json()[0]
    assert api.post("/api/v1/team/invitations", {"role": "owner"}, content_type="application/json").status_code == 403
    assert api.post("/api/v1/team/invitations", {"role": "king"}, content_type="application/json").status_code == 422
    assert api_client(alice).get("/api/v1/team/invitations").status_code == 403
    assert api.delete(f"/api/v1/team/invitations/{created.json()['id']}").status_code == 204
    assert api.get("/api/v1/team/invitations").json() == []
    assert Team.objects.get(name="Team A").invitations.get().revoked_at is not None


def test_a_link_dies_with_its_creators_power_to_grant_it(admin, bob, make_member):
    owner = make_member("olga", "Team A", role=Membership.Role.OWNER)
    _, owner_link = invitation_create(actor=Actor.of(Membership.objects.get(user=owner)), role="owner")
    _, admin_link = invitation_create(actor=Actor.of(Membership.objects.get(user=admin)), role="member")
    Membership.objects.filter(user=owner).update(role=Membership.Role.ADMIN)  # demoted: may not grant owner
    Membership.objects.filter(user=admin).delete()  # removed: may not grant anything
    for raw in (owner_link, admin_link):
        with pytest.raises(InvitationRefused, match="can no longer grant it"):
            invitation_accept(raw=raw, user=bob)
    assert not Membership.objects.filter(user=bob, team__name="Team A").exists()


def test_sign_up_refuses_names_the_studio_cannot_address(admin):
    _, raw = invitation_create(actor=Actor.of(Membership.objects.get(user=admin)))
    response = _browser().post(f"/invite/{raw}/", {"username": "a/b", "password": "a long passphrase 42"})
    assert response.status_code == 400 and "Enter a valid username" in response.content.decode()
    assert not Membership.objects.filter(user__username="a/b").exists()


def test_an_email_longer_than_the_database_holds_is_a_400_naming_the_limit(admin):
    from tests.conftest import api_client

    long = "a" * 250 + "@example.com"
    api = api_client(admin).post("/api/v1/team/invitations", {"email": long}, content_type="application/json")
    assert api.status_code == 400 and "at most 254" in api.json()["detail"]
    bad = api_client(admin).post(
        "/api/v1/team/invitations", {"email": "not an address"}, content_type="application/json"
    )
    assert bad.status_code == 400 and "is not a valid email address" in bad.json()["detail"]
    assert not Invitation.objects.exists()
    page = _browser(admin).post("/team/invitations/", {"email": long}, follow=True)
    assert "at most 254" in page.content.decode() and not Invitation.objects.exists()
