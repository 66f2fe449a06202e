"""The playground: texts go to a worker, which runs the job's stored adapter; the page and the API show the
label probabilities. Here the worker's function runs in-process (tests/integration runs the real worker)."""

import pytest
from django.test import Client

from jobs import playground
from jobs.models import Job, PlaygroundRun
from peftcore.events import ListSink
from peftcore.predict import load_predictor, predict
from peftcore.train import fit
from tests.factories import job_for
from tests.peftcore.conftest import make_spec
from tests.tiny_models import store_adapter

pytestmark = pytest.mark.django_db


@pytest.fixture
def succeeded(alice, dataset, sst2_sample, tiny_model, tiny_model_dir, tmp_path):
    """A succeeded job whose stored adapter is a real one trained on the tiny model; (job, adapter folder)."""
    job = job_for(alice, dataset, tiny_model, params={"max_length": 32})
    spec = make_spec(tiny_model_dir, sst2_sample, tmp_path / "out", params={"epochs": 1, "max_rows": 32})
    spec.update(text_column="sentence", label_column="label")
    folder = fit(spec, ListSink()).adapter_dir
    store_adapter(job, folder)
    Job.objects.filter(pk=job.pk).update(status=Job.Status.SUCCEEDED)
    playground.forget_loaded()
    return Job.objects.get(pk=job.pk), folder


def test_the_api_queues_then_returns_what_the_adapter_predicts(
    alice_api, succeeded, tiny_model_dir, django_capture_on_commit_callbacks
):
    job, folder = succeeded
    texts = ["a gripping, beautiful film", "tedious"]
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        created = alice_api.post(f"/api/v1/jobs/{job.pk}/playground", {"texts": texts}, content_type="application/json")
    assert created.status_code == 202 and created.json()["status"] == "pending" and len(callbacks) == 1
    url = f"/api/v1/jobs/{job.pk}/playground/{created.json()['id']}"
    assert playground.predict(created.json()["id"]) == "predicted"  # what the maintenance worker runs
    body = alice_api.get(url).json()
    expected = predict(load_predictor(tiny_model_dir, folder), texts, max_length=32)
    assert body["status"] == "done" and body["texts"] == texts
    for got, want in zip(body["predictions"], expected):
        assert got["label"] == want["label"]
        assert got["probabilities"] == pytest.approx(want["probabilities"], abs=1e-5)


def test_bad_requests_say_what_to_fix_and_other_teams_get_404(alice_api, bob_api, succeeded):
    job, _ = succeeded
    url = f"/api/v1/jobs/{job.pk}/playground"
    assert (
        alice_api.post(url, {"texts": [" "]}, content_type="application/json").json()["detail"] == "type a text to try"
    )
    assert "at most 32" in alice_api.post(url, {"texts": ["x"] * 33}, content_type="application/json").json()["detail"]
    assert (
        "longer than 5,000"
        in alice_api.post(url, {"texts": ["x" * 5001]}, content_type="application/json").json()["detail"]
    )
    assert bob_api.post(url, {"texts": ["x"]}, content_type="application/json").status_code == 404
    Job.objects.filter(pk=job.pk).update(status=Job.Status.FAILED)
    assert (
        "only a succeeded job"
        in alice_api.post(url, {"texts": ["x"]}, content_type="application/json").json()["detail"]
    )
    assert not PlaygroundRun.objects.exists()


def test_the_job_page_posts_polls_and_shows_the_probabilities(alice, succeeded, django_capture_on_commit_callbacks):
    job, _ = succeeded
    client = Client()
    client.force_login(alice)
    assert 'id="playground"' in client.get(f"/jobs/{job.pk}/").content.decode()
    with django_capture_on_commit_callbacks(execute=False):
        pending = client.post(f"/jobs/{job.pk}/playground/", {"texts": "great film\n\nawful film\n"})
    run = PlaygroundRun.objects.get()
    assert run.texts == ["great film", "awful film"]
    assert f"/jobs/{job.pk}/playground/{run.pk}/" in pending.content.decode()  # it polls
    playground.predict(run.pk)
    html = client.get(f"/jobs/{job.pk}/playground/{run.pk}/").content.decode()
    assert html.count('class="predicted"') == 2 and 'id="playground-predictions"' in html
    assert client.post(f"/jobs/{job.pk}/playground/", {"texts": ""}).status_code == 400


def test_a_run_whose_message_was_lost_is_asked_for_again(
    alice_api, succeeded, settings, django_capture_on_commit_callbacks
):
    job, _ = succeeded
    with django_capture_on_commit_callbacks(execute=False):
        run_id = alice_api.post(
            f"/api/v1/jobs/{job.pk}/playground", {"texts": ["x"]}, content_type="application/json"
        ).json()["id"]
    url = f"/api/v1/jobs/{job.pk}/playground/{run_id}"
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        alice_api.get(url)
    assert not callbacks  # fresh: the worker has it
    settings.PLAYGROUND_RETRY_SECONDS = 0
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert alice_api.get(url).json()["status"] == "pending"
    assert len(callbacks) == 1
