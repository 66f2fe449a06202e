"""Sweep pages and API (issue 21): the form started from a job, the sweep's table and plots (best in bold, query
count independent of the number of jobs), cancel, and another team's sweep a 404."""

import re

import pytest
from django.test import Client

from jobs.models import EvalReport, Job, Sweep
from tests.factories import job_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def base(alice, dataset, tiny_model):
    return job_for(alice, dataset, tiny_model, params={"epochs": 1})


def _finish(sweep, scores):
    for job, (score, trainable) in zip(sweep.jobs.order_by("pk"), scores):
        Job.objects.filter(pk=job.pk).update(status=Job.Status.SUCCEEDED, metrics={"accuracy": score})
        EvalReport.objects.create(job=job, data={"trainable_params": trainable, "train_seconds": 12.5})


def test_the_form_starts_a_sweep_and_its_page_compares_the_jobs(client, alice, base):
    client.force_login(alice)
    form = client.get(f"/jobs/{base.pk}/sweep/").content.decode()
    # the base job's method comes ticked, another does not
    assert re.search(r'<input[^>]*value="lora"[^>]*checked', form) and not re.search(r'value="ia3"[^>]*checked', form)
    response = client.post(
        f"/jobs/{base.pk}/sweep/", {"methods": ["lora", "ia3"], "vary_r": "4, 8", "name": "ranks"}, follow=True
    )
    sweep = Sweep.objects.get()
    assert response.redirect_chain[-1][0] == f"/sweeps/{sweep.pk}/" and sweep.jobs.count() == 3
    _finish(sweep, [(0.7, 1000), (0.9, 2000), (0.8, 50)])
    page = client.get(f"/sweeps/{sweep.pk}/").content.decode()
    table = page.split('id="sweep-table"')[1].split("</table>")[0]
    assert "<b>90.0%</b>" in table and table.count("<b>") == 1  # the best, in bold, once
    assert page.count("<svg") >= 2 and "(log scale)" in page
    best = sweep.jobs.order_by("pk")[1]
    assert f'href="/jobs/{best.pk}/again/"' in page  # "use the best settings"
    assert "hx-trigger" not in page.split('id="sweep-live"')[1].split(">")[0]  # nothing live: no polling


def test_the_form_explains_a_refusal_next_to_its_field(client, alice, base):
    client.force_login(alice)
    response = client.post(f"/jobs/{base.pk}/sweep/", {"methods": ["lora"], "vary_r": "8, x"})
    assert response.status_code == 400
    assert "numbers separated by commas" in response.content.decode()
    response = client.post(f"/jobs/{base.pk}/sweep/", {"methods": ["lora"], "vary_r": "8, 0"})
    assert response.status_code == 400 and "lora r=0" in response.content.decode()
    assert not Sweep.objects.exists()


def test_the_sweep_page_costs_the_same_queries_for_3_or_20_jobs(client, alice, base, django_assert_max_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.force_login(alice)
    counts = []
    for values in ("4,8,16", "1,2,3,4,5,6,7,8"):
        client.post(f"/jobs/{base.pk}/sweep/", {"methods": ["lora", "ia3", "vera"], "vary_r": values})
        sweep = Sweep.objects.order_by("-pk").first()
        _finish(sweep, [(0.5 + i / 100, 100 * (i + 1)) for i in range(sweep.jobs.count())])
        with CaptureQueriesContext(connection) as queries:
            assert client.get(f"/sweeps/{sweep.pk}/").status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1], counts


def test_cancel_and_another_teams_sweep(client, alice, bob, base):
    client.force_login(alice)
    client.post(f"/jobs/{base.pk}/sweep/", {"methods": ["lora"], "vary_r": "4,8"})
    sweep = Sweep.objects.get()
    page = client.get(f"/sweeps/{sweep.pk}/").content.decode()
    assert 'hx-trigger="every 5s"' in page and 'id="sweep-cancel"' in page
    client.post(f"/sweeps/{sweep.pk}/cancel/")
    assert set(sweep.jobs.values_list("status", flat=True)) == {"cancelled"}
    other = Client()
    other.force_login(bob)
    assert other.get(f"/sweeps/{sweep.pk}/").status_code == 404
    assert other.post(f"/sweeps/{sweep.pk}/cancel/").status_code == 404
    assert other.get(f"/jobs/{base.pk}/sweep/").status_code == 404


def test_the_api_starts_reads_and_cancels_a_sweep(alice_api, bob_api, base):
    response = alice_api.post(
        "/api/v1/sweeps",
        {"base_job": base.pk, "methods": ["lora"], "grid": {"r": [4, 8], "learning_rate": [0.001]}},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert [row["values"] for row in body["jobs"]] == [
        {"r": 4, "learning_rate": 0.001},
        {"r": 8, "learning_rate": 0.001},
    ]
    assert Job.objects.get(pk=body["jobs"][0]["job"]).method_params["r"] == 4  # a whole number, not 4.0
    assert bob_api.get(f"/api/v1/sweeps/{body['id']}").status_code == 404
    refused = alice_api.post(
        "/api/v1/sweeps",
        {"base_job": base.pk, "methods": ["lora"], "grid": {"r": [0]}},
        content_type="application/json",
    )
    assert refused.status_code == 400 and "lora r=0" in refused.json()["errors"]["grid"]
    cancelled = alice_api.post(f"/api/v1/sweeps/{body['id']}/cancel").json()
    assert {row["status"] for row in cancelled["jobs"]} == {"cancelled"}
