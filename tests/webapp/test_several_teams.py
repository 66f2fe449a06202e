"""A user in several teams works in one at a time: pages, forms and the API show only that team's rows, the
switcher changes it for every browser of the user, and a token stays in the team it was made for."""

import pytest
from django.test import Client

from jobs.models import Dataset
from teams.models import ApiToken, AuditEntry, Membership, Team
from teams.services import api_token_create
from tests.factories import dataset_from


@pytest.fixture
def carol(make_member, alice, bob):
    """A member of Team A (joined first) and a viewer of Team B, who has datasets in both."""
    carol = make_member("carol", "Team A")
    Membership.objects.create(team=Team.objects.get(name="Team B"), user=carol, role=Membership.Role.VIEWER)
    return carol


@pytest.fixture
def datasets(carol, alice, bob, sst2_sample):
    a = dataset_from(alice, sst2_sample, name="in-a", filename="a.tsv")
    b = dataset_from(bob, sst2_sample, name="in-b", filename="b.tsv")
    return a, b


def _browser(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_pages_show_the_team_worked_in_and_the_switcher_changes_it_for_every_browser(carol, datasets):
    a, b = datasets
    laptop, phone = _browser(carol), _browser(carol)
    page = laptop.get("/datasets/").content.decode()
    assert "in-a" in page and "in-b" not in page
    assert 'id="team-switch"' in page and "Team B · viewer" in page
    assert laptop.get(f"/datasets/{b.pk}/").status_code == 404  # another team's object until switching

    response = laptop.post(
        "/team/switch/", {"team": Membership.objects.get(user=carol, team=b.team).team_id, "next": "/datasets/"}
    )
    assert response.status_code == 302 and response["Location"] == "/datasets/"
    page = phone.get("/datasets/").content.decode()  # the choice lives in the database, not the session
    assert "in-b" in page and "in-a" not in page
    assert phone.get(f"/datasets/{b.pk}/").status_code == 200
    assert phone.get(f"/datasets/{a.pk}/").status_code == 404
    # In Team B carol is a viewer: she may read but not upload.
    with open(__file__, "rb") as f:
        assert phone.post("/datasets/", {"name": "x", "file": f}).status_code == 403


def test_switching_to_a_team_one_is_not_in_is_a_404_and_changes_nothing(carol, make_member):
    make_member("dave", "Team D")
    client = _browser(carol)
    assert client.post("/team/switch/", {"team": Team.objects.get(name="Team D").pk}).status_code == 404
    assert client.post("/team/switch/", {"team": "not a number"}).status_code == 404
    assert not Membership.objects.filter(user=carol, selected_at__isnull=False).exists()


def test_the_switcher_never_redirects_off_site(carol):
    b = Team.objects.get(name="Team B")
    # A URL name that needs arguments (job-detail) was a 500 once.
    for target in ("https://evil.example/", "//evil.example/", "/jobs/12/", "job-detail", "job-list", ""):
        response = _browser(carol).post("/team/switch/", {"team": b.pk, "next": target})
        assert response["Location"] == "/jobs/", target


def test_a_token_reaches_only_its_own_team_even_when_its_user_switches(carol, datasets):
    a, b = datasets
    token_b = Client(headers={"Authorization": f"Bearer {api_token_create(user=carol, team=b.team)}"})
    token_a = Client(headers={"Authorization": f"Bearer {api_token_create(user=carol, team=a.team)}"})
    assert [d["name"] for d in token_b.get("/api/v1/datasets").json()] == ["in-b"]
    assert token_b.get(f"/api/v1/datasets/{a.pk}").status_code == 404
    assert token_b.get("/api/v1/team").json()["role"] == "viewer"
    assert [d["name"] for d in token_a.get("/api/v1/datasets").json()] == ["in-a"]
    _browser(carol).post("/team/switch/", {"team": b.team_id})
    assert [d["name"] for d in token_a.get("/api/v1/datasets").json()] == ["in-a"]
    assert token_a.get("/api/v1/team").json()["name"] == "Team A"


def test_a_token_stops_working_when_its_user_leaves_the_team(carol, datasets):
    a, b = datasets
    raw = api_token_create(user=carol, team=b.team)
    api = Client(headers={"Authorization": f"Bearer {raw}"})
    assert api.get("/api/v1/datasets").status_code == 200
    Membership.objects.filter(user=carol, team=b.team).delete()
    assert api.get("/api/v1/datasets").status_code == 401


def test_a_token_cannot_be_made_for_a_team_the_user_is_not_in(carol, make_member):
    from teams.errors import Refused

    make_member("dave", "Team D")
    with pytest.raises(Refused, match="not a member of Team D"):
        api_token_create(user=carol, team=Team.objects.get(name="Team D"))
    assert not ApiToken.objects.filter(user=carol).exists()


def test_tokens_page_creates_a_token_shown_once_lists_and_revokes_it(carol):
    client = _browser(carol)
    b = Team.objects.get(name="Team B")
    page = client.post("/account/tokens/", {"name": "laptop CLI", "team": b.pk}).content.decode()
    token = ApiToken.objects.get(user=carol)
    assert (token.team, token.name) == (b, "laptop CLI")
    raw = page.split('id="new-token"')[1].split("<code>")[1].split("</code>")[0]
    assert raw.startswith(token.hint) and token.key_hash != raw  # stored hashed
    api = Client(headers={"Authorization": f"Bearer {raw}"})
    assert api.get("/api/v1/team").json()["name"] == "Team B"
    listing = client.get("/account/tokens/").content.decode()
    assert "laptop CLI" in listing and raw not in listing  # never shown again
    assert client.post(f"/account/tokens/{token.pk}/revoke/").status_code == 302
    assert api.get("/api/v1/team").status_code == 401
    assert AuditEntry.objects.filter(team=b, action="token.revoke").exists()


def test_tokens_page_refuses_a_team_the_user_is_not_in_and_another_users_token(carol, bob, make_member):
    client = _browser(carol)
    make_member("dave", "Team D")
    page = client.post("/account/tokens/", {"team": Team.objects.get(name="Team D").pk}).content.decode()
    assert "choose one of your teams" in page
    assert not ApiToken.objects.filter(user=carol).exists()
    api_token_create(user=bob)
    assert client.post(f"/account/tokens/{ApiToken.objects.get(user=bob).pk}/revoke/").status_code == 404
    assert ApiToken.objects.get(user=bob).revoked_at is None


def test_api_tokens_list_and_revoke_within_the_tokens_team_and_cannot_mint_more(carol):
    a, b = Team.objects.get(name="Team A"), Team.objects.get(name="Team B")
    api_token_create(user=carol, team=a, name="in A")
    raw_b = api_token_create(user=carol, team=b, name="in B")
    api_token_create(user=carol, team=b, name="spare")
    api = Client(headers={"Authorization": f"Bearer {raw_b}"})
    assert sorted(t["name"] for t in api.get("/api/v1/tokens").json()) == ["in B", "spare"]
    assert all("token" not in t and t["hint"] for t in api.get("/api/v1/tokens").json())
    # A stolen token must not be able to outlive its revocation by minting another.
    assert api.post("/api/v1/tokens", {"name": "ci"}, content_type="application/json").status_code == 405
    assert ApiToken.objects.filter(user=carol).count() == 3
    in_a, spare = ApiToken.objects.get(name="in A"), ApiToken.objects.get(name="spare")
    assert api.delete(f"/api/v1/tokens/{in_a.pk}").status_code == 404  # its own team only
    assert api.delete(f"/api/v1/tokens/{spare.pk}").status_code == 204
    assert ApiToken.objects.get(pk=spare.pk).revoked_at is not None
    this = ApiToken.objects.get(name="in B")
    assert api.delete(f"/api/v1/tokens/{this.pk}").status_code == 204
    assert api.get("/api/v1/team").status_code == 401


def test_a_token_stays_dead_when_its_user_is_let_back_into_the_team(carol):
    b = Team.objects.get(name="Team B")
    api = Client(headers={"Authorization": f"Bearer {api_token_create(user=carol, team=b)}"})
    Membership.objects.filter(user=carol, team=b).delete()
    Membership.objects.create(user=carol, team=b, role=Membership.Role.VIEWER)
    assert api.get("/api/v1/team").status_code == 401
    fresh = Client(headers={"Authorization": f"Bearer {api_token_create(user=carol, team=b)}"})
    assert fresh.get("/api/v1/team").json()["name"] == "Team B"


def test_the_team_link_shows_only_to_those_who_may_open_the_dashboard(carol):
    assert 'href="/team/"' not in _browser(carol).get("/jobs/").content.decode()
    Membership.objects.filter(user=carol, team__name="Team A").update(role=Membership.Role.ADMIN)
    assert 'href="/team/"' in _browser(carol).get("/jobs/").content.decode()


def test_new_jobs_and_datasets_go_to_the_team_worked_in(carol, datasets, tiny_model, sst2_sample):
    a, b = datasets
    Membership.objects.filter(user=carol).update(role=Membership.Role.MEMBER)
    _browser(carol).post("/team/switch/", {"team": b.team_id})
    api = Client(headers={"Authorization": f"Bearer {api_token_create(user=carol)}"})  # the team worked in
    with open(sst2_sample, "rb") as f:
        created = api.post("/api/v1/datasets", {"file": f, "name": "carols"})
    assert created.status_code == 201
    assert Dataset.objects.get(pk=created.json()["id"]).team == b.team
    # A dataset of her other team is not found from here, so no job can use it.
    response = api.post(
        "/api/v1/jobs",
        {
            "dataset": a.pk,
            "base_model": tiny_model.pk,
            "method": "lora",
            "text_column": "sentence",
            "label_column": "label",
        },
        content_type="application/json",
    )
    assert response.status_code == 400 and response.json()["errors"] == {"dataset": "not found"}
