"""Invitations and team switching in real headless Chromium."""

import pytest

from teams.models import Membership, Team
from tests.browser.pages import login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_admin_invites_a_newcomer_who_signs_up_then_switches_teams(page, make_member, bob):
    make_member("ada", "Team A", role=Membership.Role.ADMIN)
    login(page, "ada")
    page.click("header a[href='/team/']")
    page.wait_for_url("**/team/")
    page.select_option("#invitation-create select[name=role]", "member")
    page.click("#invitation-create button")
    link = page.locator("#invitation-link code").inner_text()
    assert "/invite/inv_" in link
    page.click("text=Log out")

    page.goto(link)
    assert "Join Team A" in page.locator("h1").inner_text()
    page.fill("#sign-up input[name=username]", "newbie")
    page.fill("#sign-up input[name=password]", "a long passphrase 42")
    page.click("#sign-up button")
    page.wait_for_url("**/jobs/")
    assert page.locator("#team-name").inner_text() == "Team A · member"
    assert page.locator("header a[href='/team/']").count() == 0  # members do not get the dashboard link

    # Joined a second team: the switcher appears and changes the team worked in.
    Membership.objects.create(
        team=Team.objects.get(name="Team B"),
        user=Membership.objects.get(user__username="newbie").user,
        role=Membership.Role.VIEWER,
    )
    page.goto("/datasets/")
    with page.expect_navigation():
        page.select_option("#team-switch select", label="Team B · viewer")
    assert "You now work in Team B." in page.locator(".flash").inner_text()
    assert page.url.endswith("/datasets/")
    assert Membership.objects.get(user__username="newbie", team__name="Team B").selected_at is not None
