"""The sweep in real Chromium (issue 21), at desktop and phone width: "Try several…" on a job's page, methods and
values, the sweep page's table and plots with the best in bold, and "Use the best settings" opening the job
form with that job's settings."""

import pytest
from playwright.sync_api import expect

from jobs.models import EvalReport, Job, Sweep
from tests.browser.pages import login
from tests.factories import job_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize(
    "viewport", [{"width": 1366, "height": 900}, {"width": 390, "height": 844}], ids=["1366px", "390px"]
)
def test_try_several_from_a_job_and_use_the_best(page, alice, dataset, tiny_model, viewport):
    base = job_for(alice, dataset, tiny_model, params={"epochs": 1})
    page.set_viewport_size(viewport)
    login(page, "alice")
    page.goto(f"/jobs/{base.pk}/")
    page.click("#job-sweep")
    page.check("#sweep-methods input[value=ia3]")
    page.fill("#id_vary_r", "4, 8")
    page.click("#sweep-submit")
    page.wait_for_url("**/sweeps/*/")
    sweep = Sweep.objects.get()
    rows = page.locator("#sweep-table tbody tr")
    expect(rows).to_have_count(3)  # lora r 4, lora r 8, ia3 (no rank)
    expect(page.locator("#sweep-cancel")).to_be_visible()

    # the jobs finish (scores written as a worker would), and the page shows who won
    for job, score in zip(sweep.jobs.order_by("pk"), (0.71, 0.83, 0.78)):
        Job.objects.filter(pk=job.pk).update(status=Job.Status.SUCCEEDED, metrics={"accuracy": score})
        EvalReport.objects.create(job=job, data={"trainable_params": 1000 * job.pk, "train_seconds": 30.0})
    page.reload()
    best = sweep.jobs.order_by("pk")[1]
    expect(page.locator(f"#sweep-table tr.best[data-job='{best.pk}'] b")).to_have_text("83.0%")
    expect(page.locator("svg.scatter")).to_have_count(2)
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    page.click("#sweep-best")
    page.wait_for_url("**/jobs/new/**")
    expect(page.locator("#id_m_r")).to_have_value("8")
