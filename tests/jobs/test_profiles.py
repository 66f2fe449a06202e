"""Trainable-parameter counts per method: counted by a worker-side child process, shown by the form and API."""

import pytest
from django.test import Client

from jobs import selectors, services
from jobs.profiles import profile_base_model
from jobs.services.base_models import methods_defaults_key

ROWS = [
    {"name": "lora", "count": {"trainable": 1234, "total": 100000, "share": 0.01234}},
    {"name": "ia3", "count": None, "refused": "IA3 does not fit this model"},
]


def test_profile_rows_are_stored_per_method(tiny_model):
    model = services.base_model_set_profile(model=tiny_model, rows=ROWS)
    model.refresh_from_db()
    assert model.profile == {
        "lora": ROWS[0]["count"],
        "ia3": {"refused": "IA3 does not fit this model"},
        "_defaults": methods_defaults_key(),
    }
    assert selectors.profile_count(model, "lora") == ROWS[0]["count"]


def test_a_profile_counted_for_other_method_defaults_is_not_shown_and_is_counted_again(
    tiny_model, django_capture_on_commit_callbacks
):
    model = services.base_model_set_profile(model=tiny_model, rows=ROWS)
    model.profile["_defaults"] = "an older release"
    model.save(update_fields=["profile"])
    assert selectors.profile_count(model, "lora") is None  # the form asks a worker for a live count instead
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.base_model_register(name=model.name, source=model.source)
    assert len(callbacks) == 1  # re-profiled at the next registration (the studio registers its models at start)


def test_registering_a_model_enqueues_its_profile_once_committed(db, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.base_model_register(name="x", source="local:x")
    assert len(callbacks) == 1


def test_job_form_and_api_show_the_counts(alice, alice_api, tiny_model):
    services.base_model_set_profile(model=tiny_model, rows=ROWS)
    client = Client()
    client.force_login(alice)
    html = client.get("/jobs/new/", {"base_model": tiny_model.pk, "method": "lora"}).content.decode()
    assert 'Trains <b class="trainable">1,234</b>' in html and "1.23%" in html
    assert (
        "IA3 does not fit this model"
        in client.get("/jobs/new/", {"base_model": tiny_model.pk, "method": "ia3"}).content.decode()
    )
    rows = {row["name"]: row for row in alice_api.get(f"/api/v1/methods?model={tiny_model.pk}").json()}
    assert rows["lora"]["count"]["trainable"] == 1234
    assert "count" not in alice_api.get("/api/v1/methods").json()[0]


def test_another_teams_private_model_is_404(alice_api, bob):
    private = services.base_model_register(name="b", source="local:b", team=bob.memberships.get().team)
    assert alice_api.get(f"/api/v1/methods?model={private.pk}").status_code == 404


@pytest.mark.django_db
def test_the_worker_side_count_runs_peftcore_on_the_real_model_folder(tiny_model, tiny_model_dir):
    assert profile_base_model(tiny_model.pk) == "profiled"
    tiny_model.refresh_from_db()
    lora = tiny_model.profile["lora"]
    assert 0 < lora["trainable"] < lora["total"] and lora["share"] == pytest.approx(lora["trainable"] / lora["total"])
