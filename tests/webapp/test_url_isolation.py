"""Every URL with an object id, enumerated from the URL resolver, for GET and POST: a user of another team gets
404 (405 where the view takes no such method: nothing is read), an anonymous user a login redirect (pages) or
401 (API). A new URL with an id nobody fills here fails the test until it is covered."""

import re

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from jobs import runtime, services
from jobs.models import Job, PlaygroundRun, Webhook
from teams.actor import Actor
from teams.models import ApiToken, Membership
from teams.services import api_token_create, invitation_create
from tests.conftest import api_client
from tests.factories import dataset_from, job_for, team_of

PARAM = re.compile(r"<(?:(?P<converter>\w+):)?(?P<name>\w+)>")
# Open to anyone by design: the link is the secret (tests/webapp/test_invitations.py, test_password_reset.py).
PUBLIC = {"invite/<str:token>/", "password-reset/<uidb64>/<token>/"}


def _all_routes(patterns, prefix=""):
    """Every route the resolver knows, Django's admin aside, e.g. "jobs/<int:job_id>/" (also test_security_csrf)."""
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from _all_routes(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern) and not route.startswith("admin/"):
            yield route


def _routes(patterns, prefix=""):
    yield from (route for route in _all_routes(patterns, prefix) if PARAM.search(route) and route not in PUBLIC)


@pytest.fixture
def alices_objects(alice, sst2_sample, tiny_model):
    team = team_of(alice)
    dataset = dataset_from(alice, sst2_sample, name="a")
    job = job_for(alice, dataset, tiny_model)
    runtime.job_claim(job_id=job.pk, owner="w/1")
    Job.objects.filter(pk=job.pk).update(status=Job.Status.SUCCEEDED)
    run = PlaygroundRun.objects.create(job=job, created_by=alice, texts=["x"])
    Membership.objects.filter(user=alice).update(role=Membership.Role.OWNER)
    invitation, _ = invitation_create(actor=Actor.of(Membership.objects.get(user=alice)))
    Membership.objects.filter(user=alice).update(role=Membership.Role.MEMBER)
    api_token_create(user=alice)
    webhook = Webhook.objects.create(team=team, url="https://alice.example.com/hook", secret="s", events=["failed"])
    # The team's own model: one offered to every team is visible to bob too, so it could not be a 404.
    own_model = services.base_model_register(name="alice's", source="local:tiny-bert", team=team)
    preset = services.job_preset_create(job=job, user=alice, name="alice's preset")
    sweep = services.sweep_create(team=team, user=alice, base_job=job, methods=["lora"], grid={"r": [4]})
    return {
        "sweep_id": sweep.pk,
        "preset_id": preset.pk,
        "job_id": job.pk,
        "dataset_id": dataset.pk,
        "run_id": run.pk,
        "membership_id": Membership.objects.get(user=alice).pk,
        "model_id": own_model.pk,
        "invitation_id": invitation.pk,
        "token_id": ApiToken.objects.get(user=alice).pk,
        "webhook_id": webhook.pk,
        "username": "alice",
    }


# Parameters an endpoint validates before it looks the object up (without them it answers 422, not 404).
QUERY = {"/token-stats": "?base_model={model_id}&column=sentence"}
BODY = {"/playground": {"texts": ["x"]}}


def _call(client, method: str, url: str, ids: dict):
    query = next((q.format(**ids) for end, q in QUERY.items() if url.endswith(end)), "")
    body = next((b for end, b in BODY.items() if url.endswith(end)), None)
    if method == "post" and body is not None:
        return client.post(url + query, body, content_type="application/json")
    return getattr(client, method)(url + query)


def _urls(ids: dict) -> list[str]:
    urls = []
    for route in _routes(get_resolver().url_patterns):
        names = [m["name"] for m in PARAM.finditer(route)]
        unknown = [name for name in names if name not in ids]
        assert not unknown, f"{route}: no object for {unknown}; add one to alices_objects"
        urls.append("/" + PARAM.sub(lambda m: str(ids[m["name"]]), route).replace("^", "").replace("$", ""))
    return urls


def test_every_url_with_an_id_is_404_to_another_team(alices_objects, bob):
    # An admin of their own team, so no role check answers before the team-scoped lookup does.
    Membership.objects.filter(user=bob).update(role=Membership.Role.OWNER)
    page, api = Client(), api_client(bob)
    page.force_login(bob)
    urls = _urls(alices_objects)
    assert len(urls) >= 20  # the pages and the API endpoints that take an id
    for url in urls:
        client = api if url.startswith("/api/") else page
        for method in ("get", "post"):
            status = _call(client, method, url, alices_objects).status_code
            assert status in (404, 405), f"{method.upper()} {url} -> {status}"
    assert Job.objects.get(pk=alices_objects["job_id"]).status == Job.Status.SUCCEEDED
    assert Membership.objects.get(pk=alices_objects["membership_id"]).role == "member"
    assert Webhook.objects.filter(pk=alices_objects["webhook_id"]).exists()


def test_every_url_with_an_id_refuses_an_anonymous_user(alices_objects):
    anonymous = Client()
    for url in _urls(alices_objects):
        for method in ("get", "post"):
            response = _call(anonymous, method, url, alices_objects)
            if url.startswith("/api/"):
                assert response.status_code in (401, 405), f"{method.upper()} {url} -> {response.status_code}"
            else:
                # The polled status partial stops htmx (286) and sends the whole page to the login form.
                login = response.get("Location") or response.get("HX-Redirect") or ""
                assert response.status_code in (302, 286, 405), f"{method.upper()} {url} -> {response.status_code}"
                assert response.status_code == 405 or "/login/" in login, url
