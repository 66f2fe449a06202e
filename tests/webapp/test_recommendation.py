"""The recommended method, as the API and the job form show it: the shipped benchmark table decides."""

import pytest
from django.test import Client

from peftcore.recommend import recommend
from tests.webapp.test_api import upload

pytestmark = pytest.mark.django_db


def test_the_api_recommends_for_a_number_of_rows_or_a_dataset(alice_api, sst2_sample):
    expected = recommend("text-classification", 2000)
    body = alice_api.get("/api/v1/methods/recommended?rows=2000").json()
    assert body["method"] == expected.method and body["reason"] == expected.reason and body["rows"] == 2000
    dataset = upload(alice_api, sst2_sample, name="sst2.tsv").json()
    body = alice_api.get(f"/api/v1/methods/recommended?dataset={dataset['id']}").json()
    assert (
        body["rows"] == dataset["rows"] and body["method"] == recommend("text-classification", dataset["rows"]).method
    )


def test_bad_questions_get_a_clear_400_and_other_teams_datasets_a_404(alice_api, bob_api, sst2_sample):
    assert "give rows" in alice_api.get("/api/v1/methods/recommended").json()["detail"]
    assert alice_api.get("/api/v1/methods/recommended?rows=0").status_code == 400
    assert "unknown task" in alice_api.get("/api/v1/methods/recommended?rows=5&task=x").json()["detail"]
    bobs = upload(bob_api, sst2_sample, name="b.tsv").json()["id"]
    assert alice_api.get(f"/api/v1/methods/recommended?dataset={bobs}").status_code == 404


def test_the_job_form_starts_on_the_recommended_method_and_says_why(alice, alice_api, sst2_sample, tiny_model):
    dataset = upload(alice_api, sst2_sample, name="sst2.tsv").json()
    expected = recommend("text-classification", dataset["rows"])
    client = Client()
    client.force_login(alice)
    html = client.get("/jobs/new/", {"dataset": dataset["id"]}).content.decode()
    assert f'<option value="{expected.method}" selected>' in html
    assert 'id="method-recommendation"' in html and 'id="use-recommended"' not in html
    other = "bitfit" if expected.method != "bitfit" else "lora"
    html = client.get("/jobs/new/", {"dataset": dataset["id"], "method": other}).content.decode()
    assert f'<option value="{other}" selected>' in html and 'id="use-recommended"' in html
