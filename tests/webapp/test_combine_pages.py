"""The combine form, the API's POST /jobs/combine and the combination's card on its job page (issue 21). The
jobs are rows with reports (no training here; tests/jobs/test_combine_jobs.py runs combinations for real)."""

import pytest
from django.test import Client

from jobs.models import EvalReport, Job
from tests.factories import job_row

pytestmark = pytest.mark.django_db


@pytest.fixture
def finished(dataset, tiny_model):
    def make(labels=("0", "1"), **fields):
        job = job_row(
            dataset,
            tiny_model,
            status=Job.Status.SUCCEEDED,
            method_params={"r": 8},
            text_column="sentence",
            label_column="label",
            metrics={"accuracy": 0.8},
            **fields,
        )
        EvalReport.objects.create(job=job, data={"labels": list(labels), "eval_rows": 10})
        return job

    return make


def test_the_api_queues_a_combination_with_its_recipe(alice_api, finished, django_capture_on_commit_callbacks):
    a, b = finished(), finished()
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = alice_api.post(
            "/api/v1/jobs/combine",
            {"parents": [a.pk, b.pk], "weights": [1, -1], "combination": "svd"},
            content_type="application/json",
        )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "queued" and len(queued) == 1
    assert body["combine"] == {"parents": [a.pk, b.pk], "weights": [1.0, -1.0], "combination": "svd", "density": None}
    assert body["name"] == f"svd: 1×#{a.pk} + -1×#{b.pk}" and body["dataset"] == a.dataset_id


def test_the_api_refuses_with_the_field_and_never_reveals_another_teams_job(
    alice_api, bob, finished, tiny_model, sst2_sample
):
    from tests.factories import dataset_from

    a, b = finished(), finished()
    theirs = job_row(dataset_from(bob, sst2_sample), tiny_model, status=Job.Status.SUCCEEDED)
    cases = [
        ({"parents": [a.pk, theirs.pk], "weights": [1, 1]}, "parents", "not found"),
        ({"parents": [a.pk, finished(labels=("neg", "pos")).pk], "weights": [1, 1]}, "parents", "label set"),
        ({"parents": [a.pk, b.pk], "weights": [1, 1], "combination": "ties"}, "density", "density"),
        ({"parents": [a.pk, finished(method="loha").pk], "weights": [1, 1]}, "parents", "only LoRA and IA3"),
        (
            {"parents": [finished(method="ia3").pk, finished(method="ia3").pk], "weights": [1, 1]},
            "combination",
            "'linear' only",
        ),
    ]
    for payload, field, words in cases:
        response = alice_api.post("/api/v1/jobs/combine", payload, content_type="application/json")
        assert response.status_code == 400, payload
        assert words in response.json()["errors"][field], response.json()
    assert not Job.objects.filter(combine__isnull=False).exists()


def test_the_form_offers_finished_lora_jobs_with_the_picked_ones_weighted(client, alice, finished):
    a, b, other = finished(), finished(), finished()
    client.force_login(alice)
    page = client.get(f"/jobs/combine/?ids={a.pk},{b.pk}").content.decode()
    assert f'name="weight_{a.pk}" value="1.0"' in page and f'name="weight_{b.pk}" value="1.0"' in page
    assert f'name="weight_{other.pk}"' in page and f'name="weight_{other.pk}" value' not in page
    response = client.post(
        "/jobs/combine/", {f"weight_{a.pk}": "1", f"weight_{b.pk}": "-0.5", "combination": "sum"}, follow=True
    )
    job = Job.objects.get(combine__isnull=False)
    assert response.redirect_chain[-1][0] == f"/jobs/{job.pk}/"
    # in the table's order, newest first: the first picked job's rows are the ones scored on
    assert job.combine["parents"] == [b.pk, a.pk] and job.combine["weights"] == [-0.5, 1.0]
    # its page shows the recipe before it has run
    card = response.content.decode().split('id="combination"')[1].split("</section>")[0]
    assert f"job #{a.pk}" in card and "nothing is trained" in card


def test_a_refused_combination_comes_back_with_the_summary_and_nothing_queued(client, alice, finished):
    a = finished()
    client.force_login(alice)
    response = client.post("/jobs/combine/", {f"weight_{a.pk}": "1", "combination": "sum"})
    assert response.status_code == 400
    summary = response.content.decode().split('id="error-summary"')[1].split("</div>")[0]
    assert "pick 2 to 8" in summary
    assert not Job.objects.filter(combine__isnull=False).exists()


def _finished_combination(dataset, model, combination: str, parents: list[dict], scores: dict, **fields):
    """A succeeded combination job of the given parents ({job, weight, metrics}) with its report."""
    recipe = {
        "parents": [p["job"] for p in parents],
        "weights": [p["weight"] for p in parents],
        "combination": combination,
        "density": None,
    }
    job = job_row(dataset, model, status=Job.Status.SUCCEEDED, combine=recipe, **fields)
    report = {"metrics": scores, "eval_rows": 10, "combination": {"combination": combination, "parents": parents}}
    EvalReport.objects.create(job=job, data={"labels": ["0", "1"], **report})
    return job


def test_a_finished_combination_shows_each_parent_beside_it(client, alice, finished, dataset, tiny_model):
    a, b = finished(), finished()
    parents = [
        {"job": a.pk, "weight": 1.0, "metrics": {"accuracy": 0.81}},
        {"job": b.pk, "weight": 1.0, "metrics": {"accuracy": 0.72}},
    ]
    scores = {"accuracy": 0.9, "eval_loss": 0.31}
    job = _finished_combination(dataset, tiny_model, "sum", parents, scores, metrics={"accuracy": 0.9})
    client.force_login(alice)
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    table = page.split('id="combination-table"')[1].split("</table>")[0]
    assert "81.0%" in table and "72.0%" in table and "<b>90.0%</b>" in table and "<b>0.310</b>" in table


def test_the_form_never_offers_another_teams_job(bob, finished):
    a = finished()
    client = Client()
    client.force_login(bob)
    assert client.get(f"/jobs/combine/?ids={a.pk}").content.decode().count(f"weight_{a.pk}") == 0


def test_a_combination_again_opens_the_combine_form_with_its_recipe(client, alice, finished, dataset, tiny_model):
    a, b = finished(), finished()
    recipe = {"parents": [a.pk, b.pk], "weights": [1.0, -0.5], "combination": "svd", "density": None}
    job = job_row(dataset, tiny_model, status=Job.Status.SUCCEEDED, combine=recipe)
    client.force_login(alice)
    response = client.get(f"/jobs/{job.pk}/again/", follow=True)
    assert response.redirect_chain[-1][0].startswith("/jobs/combine/?ids=")
    page = response.content.decode()
    assert f'name="weight_{a.pk}" value="1.0"' in page and f'name="weight_{b.pk}" value="-0.5"' in page
    assert '<option value="svd" selected>' in page


def test_a_learned_combination_says_a_router_mixes_its_parents(client, alice, finished, dataset, tiny_model):
    a, b = finished(), finished()
    parents = [
        {"job": p.pk, "weight": 1.0, "metrics": {"eval_loss": 2.5}, "router_share": share}
        for p, share in ((a, 0.625), (b, 0.375))
    ]
    job = _finished_combination(dataset, tiny_model, "learned", parents, {"eval_loss": 1.75}, method="xlora")
    client.force_login(alice)
    card = client.get(f"/jobs/{job.pk}/").content.decode().split('id="combination"')[1].split("</section>")[0]
    assert "learned mix (X-LoRA)" in card and "nothing is trained" not in card
    assert "alone; 62.5% of the mix" in card and "alone; 37.5% of the mix" in card and "<b>1.750</b>" in card
    form = client.get(f"/jobs/combine/?ids={a.pk},{b.pk}").content.decode()
    assert 'value="learned"' in form


def test_the_api_and_the_cli_offer_every_combination_the_worker_runs():
    import typing

    from peftcore.combine import MODES
    from studio_cli.cli import build_parser
    from webapp.api.schemas import CombineIn

    assert typing.get_args(CombineIn.model_fields["combination"].annotation) == MODES
    parser = build_parser()
    commands = next(action for action in parser._actions if action.dest == "command")
    combine = commands.choices["combine"]
    assert tuple(next(a for a in combine._actions if a.dest == "combination").choices) == MODES
