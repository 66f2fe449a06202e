"""Pre-flight token lengths: counted once per dataset column and model by the maintenance worker with the model's
own tokenizer, then judged against any max length by the web process (which loads no tokenizer)."""

import re

import pytest
from django.test import Client

from jobs.models import TokenStats
from jobs.profiles import count_tokens as worker_count
from peftcore.token_lengths import column_texts, length_histogram, summarise
from tests.webapp.test_api import upload

pytestmark = pytest.mark.django_db

LONG = "a " * 200 + "long review"


@pytest.fixture
def dataset(alice_api, sst2_sample):
    content = sst2_sample.read_bytes() + "".join(f"{LONG} {i}\t1\n" for i in range(30)).encode()
    return upload(alice_api, content, name="long.tsv", text_column="sentence", label_column="label").json()


def test_the_api_answers_202_until_the_worker_has_counted_then_the_summary(
    alice_api, dataset, tiny_model, tiny_model_dir, sst2_sample, django_capture_on_commit_callbacks
):
    url = f"/api/v1/datasets/{dataset['id']}/token-stats?base_model={tiny_model.pk}&column=sentence&max_length=64"
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        pending = alice_api.get(url)
    assert pending.status_code == 202 and pending.json()["status"] == "counting" and len(callbacks) == 1

    assert worker_count(TokenStats.objects.get().pk) == "counted"  # what the maintenance worker runs
    body = alice_api.get(url).json()
    texts = list(column_texts(sst2_sample, "tsv", "sentence")) + [f"{LONG} {i}" for i in range(30)]
    expected = summarise(length_histogram(tiny_model_dir, texts), 64)
    assert body["status"] == "done" and {k: body[k] for k in expected} == expected
    assert body["truncated_rows"] == 30 and body["max"] > 200
    assert "are longer than the maximum length of 64 tokens" in body["warning"]
    wider = alice_api.get(url.replace("max_length=64", "max_length=512")).json()
    assert wider["truncated_rows"] == 0 and wider["warning"] is None  # judged again, not counted again
    assert TokenStats.objects.count() == 1


def test_bad_requests_are_refused_and_other_teams_get_404(alice_api, bob_api, dataset, tiny_model):
    base = f"/api/v1/datasets/{dataset['id']}/token-stats?base_model={tiny_model.pk}"
    assert "not a column" in alice_api.get(base + "&column=nope").json()["detail"]
    assert alice_api.get(base + "&column=sentence&max_length=0").status_code == 400
    assert bob_api.get(base + "&column=sentence").status_code == 404
    assert not TokenStats.objects.exists()


def test_the_job_form_fragment_polls_then_shows_the_lengths(alice, dataset, tiny_model):
    client = Client()
    client.force_login(alice)
    query = {"dataset": dataset["id"], "base_model": tiny_model.pk, "text_column": "sentence", "p_max_length": 64}
    pending = client.post("/jobs/new/tokens/", query).content.decode()
    assert "Counting the tokens" in pending and 'hx-trigger="load delay:700ms"' in pending
    worker_count(TokenStats.objects.get().pk)
    html = client.post("/jobs/new/tokens/", query).content.decode()
    assert re.search(r'<b class="truncated">30</b>', html) and 'id="truncation-warning"' in html
    assert "Fix the maximum length" in client.post("/jobs/new/tokens/", {**query, "p_max_length": 0}).content.decode()
    form = client.get("/jobs/new/", {"dataset": dataset["id"]}).content.decode()
    assert 'id="token-stats"' in form


def test_asking_is_a_post_and_the_poll_posts_its_fields_back(alice, dataset, tiny_model):
    """A GET never creates the row a worker fills (issue 18, row 16): the fragments ask by POST, and their poll
    posts again with the fields in its query string."""
    client = Client()
    client.force_login(alice)
    query = {"dataset": dataset["id"], "base_model": tiny_model.pk, "text_column": "sentence", "p_max_length": 64}
    assert client.get("/jobs/new/tokens/", query).status_code == 405
    assert client.get("/jobs/new/count/", {"base_model": tiny_model.pk, "method": "lora", "m_r": 4}).status_code == 405
    assert not TokenStats.objects.exists()
    pending = client.post("/jobs/new/tokens/", query).content.decode()
    poll = re.search(r'hx-post="([^"]+)"', pending).group(1).replace("&amp;", "&")
    worker_count(TokenStats.objects.get().pk)
    assert '<b class="truncated">30</b>' in client.post(poll).content.decode()  # no body: fields from the URL


def test_a_count_that_failed_for_a_passing_reason_is_asked_again(
    alice, dataset, tiny_model, monkeypatch, django_capture_on_commit_callbacks
):
    from datetime import timedelta

    from django.utils import timezone

    import peftcore.token_lengths
    from jobs import dispatch

    client = Client()
    client.force_login(alice)
    query = {"dataset": dataset["id"], "base_model": tiny_model.pk, "text_column": "sentence", "p_max_length": 64}
    client.post("/jobs/new/tokens/", query)

    def out_of_memory(*args, **kwargs):
        raise MemoryError("the worker ran out of memory")

    monkeypatch.setattr(peftcore.token_lengths, "length_histogram", out_of_memory)
    stats = TokenStats.objects.get()
    worker_count(stats.pk)
    stats.refresh_from_db()
    assert (
        stats.result["retry"] and "could not count tokens" in client.post("/jobs/new/tokens/", query).content.decode()
    )
    monkeypatch.undo()
    long_ago = timezone.now() - timedelta(seconds=dispatch.FAILED_RETRY_SECONDS + 1)
    TokenStats.objects.filter(pk=stats.pk).update(requested_at=long_ago)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        client.post("/jobs/new/tokens/", query)
    assert len(callbacks) == 1  # asked again (the failure stays shown until the new count replaces it)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        client.post("/jobs/new/tokens/", query)
    assert callbacks == []  # not again at once: the next try waits twice as long
    worker_count(stats.pk)
    assert '<b class="truncated">30</b>' in client.post("/jobs/new/tokens/", query).content.decode()
    # A failure that keeps coming back is asked again at most FAILED_RETRIES times.
    given_up = {"error": "out of memory", "retry": True, "attempts": dispatch.FAILED_RETRIES + 1}
    TokenStats.objects.filter(pk=stats.pk).update(result=given_up, requested_at=timezone.now() - timedelta(days=9))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        client.post("/jobs/new/tokens/", query)
    assert callbacks == []
    # A failure of the data itself is not asked again: it would fail the same way.
    TokenStats.objects.filter(pk=stats.pk).update(result={"error": "no such column"}, requested_at=long_ago)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        client.post("/jobs/new/tokens/", query)
    assert callbacks == []


def test_the_count_fragments_need_the_csrf_token_htmx_sends(alice, dataset, tiny_model):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    client.get("/jobs/new/")  # sets the CSRF cookie, as the form page does
    query = {"dataset": dataset["id"], "base_model": tiny_model.pk, "text_column": "sentence"}
    assert client.post("/jobs/new/tokens/", query).status_code == 403
    assert not TokenStats.objects.exists()
    token = client.cookies["csrftoken"].value
    assert client.post("/jobs/new/tokens/", query, headers={"X-CSRFToken": token}).status_code == 200
