"""A strict Content-Security-Policy (issue 18, row 16) and pages that live within it: every page a user reaches,
visited in real Chromium with its htmx fragments loaded and its scripted controls used, reports no violation
(no inline script or style, no eval)."""

import pytest
from django.utils import timezone

from jobs.models import EvalReport, Job, MetricPoint
from teams.models import Membership
from tests.browser.pages import login
from tests.factories import job_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WATCH = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) =>
  window.__violations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sample || ""}`.trim()));
"""


def _finished(alice, dataset, tiny_model) -> Job:
    job = job_for(alice, dataset, tiny_model)
    Job.objects.filter(pk=job.pk).update(
        status=Job.Status.SUCCEEDED,
        metrics={"accuracy": 0.85, "macro_f1": 0.84},
        finished_at=timezone.now(),
        progress_step=2,
        progress_total=2,
    )
    EvalReport.objects.create(
        job=job,
        data={
            "labels": ["0", "1"],
            "confusion_matrix": [[40, 10], [5, 45]],
            "per_class": {"0": {"precision": 0.9, "recall": 0.8, "f1": 0.85, "support": 50}},
            "eval_rows": 100,
            "train_seconds": 3.0,
        },
    )
    MetricPoint.objects.bulk_create([MetricPoint(job=job, step=s, name="loss", value=1 / s) for s in (1, 2)])
    return job


def test_every_page_keeps_to_the_content_security_policy(page, alice, dataset, tiny_model, live_server):
    Membership.objects.filter(user=alice).update(role=Membership.Role.ADMIN)
    job = _finished(alice, dataset, tiny_model)
    page.context.add_init_script(WATCH)
    response = page.goto("/login/")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "style-src 'self'" in policy and "unsafe" not in policy
    login(page, "alice")
    seen = {}
    for path in (
        "/jobs/",
        "/datasets/",
        f"/datasets/{dataset.pk}/",
        f"/jobs/new/?dataset={dataset.pk}",
        f"/jobs/{job.pk}/",
        f"/jobs/compare/?ids={job.pk}",
        "/team/",
        "/account/tokens/",
        "/api/v1/docs",
        "/no/such/page/",
        "/password-reset/",
    ):
        page.goto(path)
        page.wait_for_load_state("load")
        page.wait_for_timeout(700)  # the htmx fragments a page loads at once
        seen[path] = page.evaluate("window.__violations")
    # The scripted controls work from the static file: the recommended-method button and the team switcher.
    page.goto(f"/jobs/new/?dataset={dataset.pk}")
    page.select_option("#id_method", "ia3")
    page.wait_for_selector("#use-recommended")
    page.click("#use-recommended")
    page.wait_for_selector("#use-recommended", state="detached")
    seen["job form, recommended method used"] = page.evaluate("window.__violations")
    assert {path: found for path, found in seen.items() if found} == {}
