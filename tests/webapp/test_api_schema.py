"""Schemathesis against the studio's own OpenAPI document, in process (WSGI): every operation, a bounded and
reproducible number of generated requests, sent with the token of an admin whose team owns real objects.

Checked: no 5xx, responses match the documented schemas, and authentication is never ignored (schemathesis's
ignored_auth probe on every successful answer, and each operation once without a token: 401).

Nothing trains and nothing is excluded: each operation runs in one transaction that is rolled back
(pytest-django's `db`), so the on-commit Celery messages of job, resume, playground and token-count requests
are never published; the adapter download is cheap here because no job has an adapter."""

import json

import pytest
import schemathesis
from django.conf import settings as django_settings
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import ignored_auth, response_schema_conformance

from jobs import services
from teams.actor import Actor
from teams.models import Membership
from teams.services import api_token_create
from tests.factories import SST2_COLUMNS, dataset_from, job_for
from webapp.wsgi import application

schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", application)
CHECKS = [not_a_server_error, response_schema_conformance, ignored_auth]
# Operations a client may call without a token. Empty: every operation needs one; add one here only on purpose.
PUBLIC: set[str] = set()


@pytest.fixture
def keep_the_test_transaction():
    """Requests go straight to the WSGI app rather than through Django's test client, so Django would close
    the connection, and with it the test's transaction, at the end of each request; the test client stops
    that the same way."""
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


@pytest.fixture
def studio(keep_the_test_transaction, alice, sst2_sample):
    """alice, an admin, with a token; her team's dataset (the SST-2 sample), own base model and queued job."""
    Membership.objects.filter(user=alice).update(role=Membership.Role.ADMIN)
    actor = Actor.of(alice.memberships.get())
    dataset = dataset_from(alice, sst2_sample, **SST2_COLUMNS)
    bundled = services.base_model_register_bundled()
    folder = django_settings.MODEL_ROOT / "schema-test-model"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (folder / "model.safetensors").write_bytes(b"")
    own = services.base_model_add(actor=actor, name="own", source="local:schema-test-model")
    job = job_for(alice, dataset, bundled)
    ids = {
        "dataset_id": dataset.pk,
        "job_id": job.pk,
        "model_id": own.pk,
        "dataset": dataset.pk,
        "base_model": bundled.pk,
        "start_from": job.pk,
        "column": "sentence",
    }
    return {"token": api_token_create(user=alice), "ids": ids}


def _on_real_objects(case, ids: dict) -> bool:
    """Point the case's ids (path, query, JSON body) at the user's real objects; False if it names none."""
    changed = False
    for part in ("path_parameters", "query"):
        values = getattr(case, part) or {}
        if real := {name: ids[name] for name in values if name in ids}:
            setattr(case, part, {**values, **real})
            changed = True
    if isinstance(case.body, dict) and (real := {name: ids[name] for name in case.body if name in ids}):
        case.body = {**case.body, **real}
        changed = True
    return changed


@schema.parametrize()
@settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_conforms_and_never_fails(case, studio):
    headers = {"Authorization": f"Bearer {studio['token']}"}
    case.call_and_validate(headers=headers, checks=CHECKS)
    # Generated ids mostly miss; the same request on the user's own objects reaches the code that reads them.
    if _on_real_objects(case, studio["ids"]):
        case.call_and_validate(headers=headers, checks=CHECKS)


def test_every_operation_refuses_a_request_without_a_token(studio):
    anonymous = Client()
    checked = []
    for result in schema.get_all_operations():
        operation = result.ok()
        label = f"{operation.method.upper()} {operation.path}"
        if label in PUBLIC:
            continue
        assert operation.definition.raw.get("security"), (
            f"{label} declares no authentication; if it is meant to be public, add it to PUBLIC"
        )
        path = operation.path.format(**{p.name: studio["ids"].get(p.name, 1) for p in operation.path_parameters})
        response = getattr(anonymous, operation.method.lower())(path)
        assert response.status_code == 401, f"{label} answered {response.status_code} without a token"
        checked.append(label)
    assert "DELETE /api/v1/models/{model_id}" in checked and len(checked) >= 30


def test_a_nul_character_anywhere_is_a_400_not_a_server_error(studio, sst2_sample):
    """Postgres cannot store NUL in text; found by probing what the generators reach only rarely."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from jobs.models import Blob

    api = Client(headers={"Authorization": f"Bearer {studio['token']}"})
    ids = studio["ids"]
    job = api.post(
        "/api/v1/jobs",
        {
            "dataset": ids["dataset"],
            "base_model": ids["base_model"],
            "method": "lora",
            "text_column": "sentence",
            "label_column": "label",
            "name": "a\x00b",
        },
        content_type="application/json",
    )
    assert job.status_code == 400 and "NUL" in job.json()["detail"]
    assert api.get("/api/v1/jobs?status=queued%00").status_code == 400
    model = api.post(
        "/api/v1/models",
        {"name": "a\x00", "source": "owner/name", "revision": "0" * 40},
        content_type="application/json",
    )
    assert model.status_code == 400 and "NUL" in model.json()["errors"]["name"]
    blobs = Blob.objects.count()
    upload = api.post(
        "/api/v1/datasets", {"file": SimpleUploadedFile("t.tsv", sst2_sample.read_bytes()), "name": "a\x00"}
    )
    assert upload.status_code == 400 and "NUL" in upload.json()["detail"]
    assert Blob.objects.count() == blobs  # refused before the bytes were stored
    assert api.get("/api/v1/jobs").status_code == 200  # the connection and its transaction are still usable
