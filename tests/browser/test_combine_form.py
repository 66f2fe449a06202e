"""The combine form in real Chromium (issue 21), at desktop and phone width: from the jobs list, tick two finished
LoRA jobs, "Combine selected", weigh them, and land on the new job's page with its recipe; a refusal comes back
in the focused summary at the top with nothing queued."""

import pytest
from playwright.sync_api import expect

from jobs.models import EvalReport, Job
from tests.browser.pages import login
from tests.factories import job_row

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _finished(dataset, model, name):
    job = job_row(
        dataset,
        model,
        name=name,
        status=Job.Status.SUCCEEDED,
        method_params={"r": 8},
        text_column="sentence",
        label_column="label",
        metrics={"accuracy": 0.8},
    )
    EvalReport.objects.create(job=job, data={"labels": ["0", "1"], "eval_rows": 10})
    return job


@pytest.mark.parametrize(
    "viewport", [{"width": 1366, "height": 900}, {"width": 390, "height": 844}], ids=["1366px", "390px"]
)
def test_combine_two_jobs_from_the_list(page, alice, dataset, tiny_model, viewport):
    positive, negative = _finished(dataset, tiny_model, "positive"), _finished(dataset, tiny_model, "negative")
    page.set_viewport_size(viewport)
    login(page, "alice")
    page.goto("/jobs/")
    page.check(f"input[name=ids][value='{positive.pk}']")
    page.check(f"input[name=ids][value='{negative.pk}']")
    page.click("#combine-selected")
    expect(page.locator(f"#id_weight_{positive.pk}")).to_have_value("1.0")
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0  # no sideways scroll

    # one job alone cannot be combined: the summary says so, takes the focus, and nothing is queued
    page.fill(f"#id_weight_{negative.pk}", "")
    page.click("#combine-submit")
    expect(page.locator("#error-summary")).to_be_focused()
    assert "pick 2 to 8" in page.locator("#error-summary").inner_text()
    assert not Job.objects.filter(combine__isnull=False).exists()

    page.fill(f"#id_weight_{positive.pk}", "1")
    page.fill(f"#id_weight_{negative.pk}", "-1")
    page.select_option("#id_combination", "svd")
    page.click("#combine-submit")
    page.wait_for_url("**/jobs/*/")
    job = Job.objects.get(combine__isnull=False)
    assert job.combine["combination"] == "svd" and sorted(job.combine["weights"]) == [-1.0, 1.0]
    card = page.locator("#combination")
    expect(card).to_contain_text(f"job #{positive.pk}")
    expect(card).to_contain_text("nothing is trained")
