"""A causal LM's adapter in real headless Chromium: the playground writes text (the base model's or another
adapter's beside the adapter's, shown while it is written) and the merged export is asked for, built by the worker
and downloaded."""

import io
import zipfile

import pytest
from playwright.sync_api import expect

from jobs import dispatch
from jobs.models import PlaygroundRun
from tests.browser.pages import login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_playground_writes_beside_the_base_model_and_the_merged_model_downloads(
    celery_worker_process,
    page,
    alice,
    sft_job,
):
    login(page, "alice")
    page.goto(f"/jobs/{sft_job.pk}/")
    page.fill("#id_texts", "a gripping film\nthe worst plot")
    page.fill("#generation-settings input[name=max_new_tokens]", "12")
    expect(page.locator("#generation-settings input[name=compare_base]")).to_be_checked()
    page.click("#playground button[type=submit]")
    table = page.locator("#playground-generations")
    expect(table).to_be_visible(timeout=120_000)
    # Two prompts, each with the base model's text and the adapter's (the same weights, adapter off and on).
    assert table.locator("tbody tr").count() == 2
    assert table.locator("td.base-generated").count() == 2 and table.locator("td.generated").count() == 2
    assert "base model" in table.locator("thead").inner_text()

    # Merged export: asked for once, the worker folds the adapter in, the page follows without a reload.
    page.click("#export-merged")
    expect(page.locator("#merged-progress")).to_be_visible()
    download_link = page.locator("#download-merged")
    expect(download_link).to_be_visible(timeout=180_000)
    with page.expect_download() as download:
        download_link.click()
    archive = zipfile.ZipFile(io.BytesIO(open(download.value.path(), "rb").read()))
    assert {"model.safetensors", "Modelfile", "README.md"} <= set(archive.namelist())


def test_generated_text_shows_while_the_worker_writes(page, alice, sft_job, monkeypatch):
    # The worker is held back (its message never sent, as with a broker down) so the test plays its part: the live
    # server runs in this process, so the page sees each write the worker would make.
    held = []
    monkeypatch.setattr(dispatch, "publish", lambda task, *args: held.append((task, args)))
    login(page, "alice")
    page.goto(f"/jobs/{sft_job.pk}/")
    page.fill("#id_texts", "a gripping film")
    page.click("#playground button[type=submit]")
    expect(page.locator("#playground-result")).to_contain_text("Running the adapter on 1 text")
    run = PlaygroundRun.objects.get(job=sft_job)
    assert held == [(dispatch.PLAYGROUND_PREDICT, (run.pk,))]

    PlaygroundRun.objects.filter(pk=run.pk).update(
        partial={"generations": ["it was posi"], "base_generations": ["The film"]}
    )
    streaming = page.locator("#playground-streaming")
    expect(streaming.locator("td.generated")).to_contain_text("it was posi", timeout=10_000)
    expect(streaming.locator("td.base-generated")).to_contain_text("The film")
    PlaygroundRun.objects.filter(pk=run.pk).update(
        partial={"generations": ["it was positive"], "base_generations": ["The film was"]}
    )
    expect(streaming.locator("td.generated")).to_contain_text("it was positive", timeout=10_000)

    PlaygroundRun.objects.filter(pk=run.pk).update(
        result={"generations": [{"generation": "it was positive", "base_generation": "The film was long"}]}
    )
    final = page.locator("#playground-generations")
    expect(final.locator("td.generated")).to_have_text("it was positive", timeout=10_000)
    expect(final.locator("td.base-generated")).to_have_text("The film was long")
    assert page.locator("#playground-streaming").count() == 0  # polling stopped with the answer


def test_another_adapter_writes_beside_this_one_while_the_worker_writes(page, alice, sft_job, monkeypatch):
    from jobs.models import Job
    from tests.factories import job_row

    later = job_row(sft_job.dataset, sft_job.base_model, status=Job.Status.SUCCEEDED, task="sft", start_from=sft_job)
    monkeypatch.setattr(dispatch, "publish", lambda task, *args: None)  # the test plays the worker's part
    login(page, "alice")
    page.goto(f"/jobs/{later.pk}/")
    expect(page.locator("#id_compare_job")).to_have_value(str(sft_job.pk))  # the job it started from
    page.fill("#id_texts", "a gripping film")
    page.uncheck("#generation-settings input[name=compare_base]")
    page.click("#playground button[type=submit]")
    expect(page.locator("#playground-result")).to_contain_text("Running the adapter on 1 text")
    run = PlaygroundRun.objects.get(job=later)
    assert run.options["compare_job"] == sft_job.pk and run.options["compare_base"] is False

    PlaygroundRun.objects.filter(pk=run.pk).update(partial={"compare_generations": ["it was neg"]})
    streaming = page.locator("#playground-streaming")
    expect(streaming.locator("td.compare-generated")).to_contain_text("it was neg", timeout=10_000)
    expect(streaming.locator("thead")).to_contain_text(f"Job #{sft_job.pk}")
    PlaygroundRun.objects.filter(pk=run.pk).update(
        result={"generations": [{"generation": "positive", "compare_generation": "it was negative"}]}
    )
    final = page.locator("#playground-generations")
    expect(final.locator("td.compare-generated")).to_have_text("it was negative", timeout=10_000)
    expect(final.locator("td.generated")).to_have_text("positive")
    assert final.locator("td.base-generated").count() == 0
