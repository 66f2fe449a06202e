"""Every state-changing request needs proof it is not forged: every browser URL (enumerated from the resolver)
refuses POST, PUT, PATCH and DELETE without a CSRF token, and every write operation of the API (enumerated from
its OpenAPI schema) refuses a session cookie without a bearer token. Nothing changes in the database. A new URL or
endpoint is covered without touching this file."""

import pytest
from django.apps import apps
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import get_resolver

from jobs.models import Dataset, Job, WorkerHeartbeat
from teams.models import ApiToken, AuditEntry, Membership
from tests.webapp.test_url_isolation import PARAM, _all_routes, alices_objects  # noqa: F401  (its fixture)
from webapp.api import api

WRITES = ("post", "put", "patch", "delete")
COUNTED = (Dataset, Job, Membership, AuditEntry, ApiToken)


@pytest.fixture
def ids(request) -> dict:
    """An object of each kind in alice's team, from the URL isolation test."""
    return request.getfixturevalue("alices_objects")


def _fill(route: str, ids: dict) -> str:
    # The refusal comes before any lookup, so an id this test has no object for may be any number.
    return "/" + PARAM.sub(lambda m: str(ids.get(m["name"], 1)), route).lstrip("/").replace("^", "").replace("$", "")


def _counts() -> dict:
    return {model.__name__: model.objects.count() for model in COUNTED}


def _every_row() -> dict:
    """All rows of every table, to catch updates, not only inserts. Sessions aside (reading a page may touch
    one), and worker heartbeats (a worker process left by another test may still write its own row)."""
    return {
        model._meta.label: list(model.objects.order_by("pk").values())
        for model in apps.get_models()
        if model not in (Session, WorkerHeartbeat)
    }


def _owner(alice) -> Client:
    # An owner passes every role check, so only the missing token can be what refuses the request.
    Membership.objects.filter(user=alice).update(role=Membership.Role.OWNER)
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    return client


def test_every_browser_write_without_a_csrf_token_is_refused(ids, alice):
    client = _owner(alice)
    urls = sorted(
        {_fill(route, ids) for route in _all_routes(get_resolver().url_patterns) if not route.startswith("api/")}
    )
    assert {"/login/", "/logout/", "/datasets/", "/jobs/new/", "/team/members/"} <= set(urls), urls
    before, counts = _every_row(), _counts()
    for url in urls:
        for method in WRITES:
            response = getattr(client, method)(url, {"name": "x", "role": "viewer", "username": "alice"})
            assert response.status_code == 403, f"{method.upper()} {url} -> {response.status_code}"
            assert b"CSRF verification failed" in response.content, f"{method.upper()} {url}: not a CSRF refusal"
            assert _counts() == counts, f"{method.upper()} {url} changed rows"
    assert _every_row() == before


def test_the_same_browser_with_its_token_gets_through(alice):
    # The control for the test above: what refused those requests was the missing token, nothing else.
    client = _owner(alice)
    client.get("/datasets/")
    response = client.post("/logout/", headers={"X-CSRFToken": client.cookies["csrftoken"].value})
    assert response.status_code == 302 and "_auth_user_id" not in client.session


def test_every_api_write_refuses_a_session_cookie_without_a_bearer_token(ids, alice):
    client = Client()  # no CSRF enforcement either: the session alone must never be enough
    client.force_login(alice)
    Membership.objects.filter(user=alice).update(role=Membership.Role.OWNER)
    operations = [
        (method, path) for path, ops in api.get_openapi_schema()["paths"].items() for method in ops if method in WRITES
    ]
    assert len(operations) >= 8 and ("post", "/api/v1/datasets") in operations, operations
    before, counts = _every_row(), _counts()
    for method, path in operations:
        url = path.replace("{", "<").replace("}", ">")
        response = getattr(client, method)(_fill(url, ids), {}, content_type="application/json")
        assert response.status_code == 401, f"{method.upper()} {path} -> {response.status_code}"
        assert _counts() == counts, f"{method.upper()} {path} changed rows"
    assert _every_row() == before
