"""Refusals in the browser are pages of the site (layout, nav, what to do), not Django's bare "403 Forbidden"."""

import pytest
from django.template.loader import render_to_string
from django.test import Client

from teams.models import Membership
from teams.services import user_create
from tests.factories import job_for
from tests.webapp.test_team_admin import browser


def test_a_403_page_keeps_the_layout_and_names_the_role_to_ask_for(alice, dataset, tiny_model):
    team = Membership.objects.get(user=alice).team
    viewer = user_create(username="vera", password="pw-vera", team=team, role=Membership.Role.VIEWER)
    job = job_for(alice, dataset, tiny_model)
    response = browser(viewer).post(f"/jobs/{job.pk}/cancel/")
    page = response.content.decode()
    assert response.status_code == 403
    assert 'id="refusal"' in page and "Log out" in page  # the site's layout, with the nav
    assert "viewer of Team A cannot" in page and "member role" in page


def test_a_404_page_says_the_object_may_be_another_teams(alice, bob, dataset, tiny_model):
    job = job_for(alice, dataset, tiny_model)
    response = browser(bob).get(f"/jobs/{job.pk}/")
    page = response.content.decode()
    assert response.status_code == 404 and 'id="not-found"' in page and "Log out" in page
    assert "switch to it from the" in page and f"/jobs/{job.pk}/" in page
    anonymous = Client().get("/no-such-page/")
    assert anonymous.status_code == 404 and "switch to it" not in anonymous.content.decode()


@pytest.mark.django_db
def test_the_500_page_stands_alone_and_says_what_to_do():
    page = render_to_string("500.html")
    assert "Something went wrong on our side" in page and "operator" in page and "{%" not in page
