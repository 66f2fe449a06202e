"""Team admins add and remove their team's base models: references checked without downloading, hub models
pinned to a commit, removals refused for shared models and models jobs used."""

import json

import huggingface_hub.constants
import pytest
from django.conf import settings
from django.test import Client

from jobs import services
from jobs.models import BaseModel
from teams.models import AuditEntry, Membership
from tests.conftest import api_client
from tests.factories import dataset_from, job_for

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(autouse=True)
def hub_offline(monkeypatch):
    """No test here may reach the network: an unpinned hub model must be refused, not looked up."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


@pytest.fixture
def admin(alice):
    Membership.objects.filter(user=alice).update(role=Membership.Role.ADMIN)
    return alice


@pytest.fixture
def api(admin):
    return api_client(admin)


def model_folder(name: str, weights: str = "model.safetensors"):
    folder = settings.MODEL_ROOT / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(
        json.dumps({"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2})
    )
    (folder / weights).write_bytes(b"")
    return folder


def add(api, **fields):
    return api.post("/api/v1/models", {"name": "m", "source": "", **fields}, content_type="application/json")


def test_an_admin_adds_a_local_model_that_only_their_team_sees(api, admin, bob_api):
    model_folder("team-bert")
    response = add(api, name="Team BERT", source="local:team-bert", description="ours")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["source"] == "local:team-bert" and body["revision"] == "" and body["name"] == "Team BERT"
    assert body["id"] in [m["id"] for m in api.get("/api/v1/models").json()]
    assert body["id"] not in [m["id"] for m in bob_api.get("/api/v1/models").json()]
    entry = AuditEntry.objects.get(action="model.add")
    assert entry.team_id == admin.memberships.get().team_id and entry.detail["source"] == "local:team-bert"
    again = add(api, name="twice", source="local:team-bert")
    assert again.status_code == 400 and "already offered" in again.json()["errors"]["source"]


@pytest.mark.parametrize(
    "source, revision, field, message",
    [
        ("local:../escape", "", "source", "must not contain '..'"),
        ("local:/etc", "", "source", "must be relative"),
        ("local:missing", "", "source", "does not exist"),
        ("local:pickled", "", "source", "safetensors weights only"),
        ("local:team-bert", "main", "revision", "only Hugging Face models have a revision"),
        ("gpt2", "", "source", "is not a model reference"),
        ("owner/name", "bad rev", "revision", "is not a revision"),
    ],
)
def test_bad_references_are_refused_with_what_to_fix(api, source, revision, field, message):
    model_folder("team-bert")
    model_folder("pickled", weights="pytorch_model.bin")
    response = add(api, source=source, revision=revision)
    assert response.status_code == 400
    assert message in response.json()["errors"][field]
    assert not BaseModel.objects.exists()


def test_a_hub_model_with_a_commit_id_is_kept_without_asking_the_hub(api):
    response = add(api, name="Qwen", source="Qwen/Qwen2.5-0.5B", revision=COMMIT.upper())
    assert response.status_code == 201, response.json()
    assert response.json()["revision"] == COMMIT  # stored lower-case, as the hub writes commit ids


@pytest.mark.parametrize("revision", ["main", "v1.0", ""])
def test_a_hub_branch_or_tag_needs_the_hub_and_offline_it_asks_for_the_commit(api, revision):
    response = add(api, name="Qwen", source="Qwen/Qwen2.5-0.5B", revision=revision)
    assert response.status_code == 400
    message = response.json()["errors"]["revision"]
    assert "could not ask the Hugging Face hub" in message and "full 40-character commit id" in message
    assert not BaseModel.objects.exists()


def test_members_cannot_add_or_remove_models(alice):
    team = alice.memberships.get().team
    model = services.base_model_register(name="ours", source="local:x", team=team)
    member = api_client(alice)
    refused = add(member, source="Qwen/Qwen2.5-0.5B", revision=COMMIT)
    assert refused.status_code == 403 and "ask an admin" in refused.json()["detail"]
    assert member.delete(f"/api/v1/models/{model.pk}").status_code == 403
    page = Client()
    page.force_login(alice)
    form = {"name": "x", "source": "Qwen/Qwen2.5-0.5B", "revision": COMMIT}
    assert page.post("/team/models/", form).status_code == 403
    assert page.post(f"/team/models/{model.pk}/remove/").status_code == 403
    assert BaseModel.objects.filter(pk=model.pk).exists() and BaseModel.objects.count() == 1


def test_removing_a_model(api, admin, bob, sst2_sample):
    model_folder("team-bert")
    model_folder("other-bert")
    unused = BaseModel.objects.get(pk=add(api, name="unused", source="local:team-bert").json()["id"])
    used = BaseModel.objects.get(pk=add(api, name="used", source="local:other-bert").json()["id"])
    job_for(admin, dataset_from(admin, sst2_sample), used)
    shared = services.base_model_register(name="for everyone", source="local:shared")
    theirs = services.base_model_register(name="bob's", source="local:bobs", team=bob.memberships.get().team)

    assert api.delete(f"/api/v1/models/{unused.pk}").status_code == 204
    assert not BaseModel.objects.filter(pk=unused.pk).exists()
    assert AuditEntry.objects.get(action="model.remove").detail["name"] == "unused"

    in_use = api.delete(f"/api/v1/models/{used.pk}")
    assert in_use.status_code == 409 and "1 job(s) of Team A were trained on it" in in_use.json()["detail"]
    global_ = api.delete(f"/api/v1/models/{shared.pk}")
    assert global_.status_code == 403 and "offered to every team" in global_.json()["detail"]
    assert api.delete(f"/api/v1/models/{theirs.pk}").status_code == 404
    assert BaseModel.objects.filter(pk__in=[used.pk, shared.pk, theirs.pk]).count() == 3


def test_the_dashboard_section_adds_lists_and_removes(admin):
    model_folder("team-bert")
    page = Client()
    page.force_login(admin)
    dashboard = page.get("/team/").content.decode()
    assert 'id="models"' in dashboard and "Your team has added no models yet." in dashboard

    added = page.post("/team/models/", {"name": "Team BERT", "source": "local:team-bert"}, follow=True)
    text = added.content.decode()
    assert "Added &#x27;Team BERT&#x27;" in text and "<code>local:team-bert</code>" in text

    refused = page.post(
        "/team/models/", {"name": "Qwen", "source": "Qwen/Qwen2.5-0.5B", "revision": "main"}, follow=True
    ).content.decode()
    assert "revision: could not ask the Hugging Face hub" in refused and "40-character commit id" in refused

    model = BaseModel.objects.get(name="Team BERT")
    removed = page.post(f"/team/models/{model.pk}/remove/", follow=True).content.decode()
    assert "Removed &#x27;Team BERT&#x27;" in removed and not BaseModel.objects.filter(pk=model.pk).exists()
    assert page.post("/team/models/999999/remove/").status_code == 404
