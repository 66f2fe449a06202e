"""The browser path in real headless Chromium (Debian's package) driven by Playwright."""

import os

import pytest
from playwright.sync_api import expect

from peftcore.counting import count_trainable
from peftcore.methods import get_method
from peftcore.recommend import recommend
from tests.browser.pages import assert_below, assert_select_text_fits, login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_upload_train_and_download_in_the_browser(
    celery_worker_process, page, alice, tiny_model, sst2_sample, tiny_model_dir, tmp_path
):
    login(page, "alice")

    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\nfine,1\n,0\nthree,fields,here\n")
    page.goto("/datasets/")
    page.set_input_files("input[name=file]", str(bad))
    page.fill("input[name=text_column]", "text")
    page.click("#upload-form button[type=submit]")
    errors = page.locator("#row-errors").inner_text()
    assert "3" in errors and "4" in errors and "empty" in errors.lower()

    page.set_input_files("input[name=file]", str(sst2_sample))
    page.fill("input[name=text_column]", "")
    # Sent by htmx (so the progress bar can follow it), then the browser goes to the new dataset's page.
    with page.expect_request(lambda r: r.method == "POST" and r.headers.get("hx-request") == "true"):
        page.click("#upload-form button[type=submit]")
    page.wait_for_url("**/datasets/*/")
    assert page.locator("#row-count").inner_text() == "200"
    assert page.locator("#preview tbody tr").count() > 0

    page.click("text=Train on this dataset")
    page.wait_for_selector("#id_text_column")
    assert page.locator("#id_text_column").input_value() == "sentence"
    assert page.locator("#id_label_column").input_value() == "label"
    # Another task relabels the columns and brings the SFT fields; going back keeps the columns chosen.
    page.select_option("#id_task", "sft")
    page.wait_for_selector("#id_template")
    assert page.locator("label[for=id_text_column]").inner_text() == "Prompt column"
    page.select_option("#id_task", "text-classification")
    page.wait_for_selector("#id_template", state="detached")
    assert page.locator("label[for=id_label_column]").inner_text() == "Label column"
    assert page.locator("#id_label_column").input_value() == "label"
    page.select_option("#id_base_model", label=tiny_model.name)
    # The form starts on the method the benchmark table recommends for 200 rows, and says why; picking
    # another offers a way back.
    recommended = recommend("text-classification", 200).method
    assert page.locator("#id_method").input_value() == recommended
    assert "Recommended for 200 rows" in page.locator("#method-recommendation").inner_text()
    other = "ia3" if recommended == "lora" else "lora"
    page.select_option("#id_method", other)
    page.wait_for_selector(f"text=Advanced: {get_method(other).label} parameters")
    page.click("#use-recommended")
    page.wait_for_selector(f"text=Advanced: {get_method(recommended).label} parameters")
    assert page.locator("#id_method").input_value() == recommended
    if recommended != "lora":
        page.select_option("#id_method", "lora")
        page.wait_for_selector("text=Advanced: LoRA parameters")
    # A re-render of the form (after a change of task, dataset or method) still in flight would replace the
    # field filled next: wait for it to land, as a person does.
    page.wait_for_selector("#job-form:not(.htmx-request)")
    # The trainable count follows the method's settings as they change (a worker counts; no torch here).
    page.click("text=Advanced: LoRA parameters")
    page.fill("#id_m_r", "32")
    page.locator("#id_m_r").dispatch_event("change")
    expected = f"{count_trainable(tiny_model_dir, 'lora', {'r': 32}, 'text-classification')['trainable']:,}"
    # Locator waits, not wait_for_function: the page's Content-Security-Policy forbids the eval that one uses.
    expect(page.locator("#method-count b.trainable")).to_have_text(expected, timeout=60_000)
    # Token lengths of the text column under the chosen model's tokenizer, counted by the worker, then judged
    # against the max length as it changes.
    page.wait_for_selector("#token-stats .token-stats", timeout=60_000)
    # What the empty settings will be, and why, for this data (chosen when the job is created).
    page.wait_for_selector("#job-defaults ul.choices li[data-name='params.epochs']", timeout=30_000)
    assert "because a budget of about 300 steps" in page.locator("#job-defaults").inner_text()
    page.fill("#id_p_max_length", "8")
    page.locator("#id_p_max_length").dispatch_event("change")
    page.wait_for_selector("#truncation-warning", timeout=30_000)
    assert_below(page.locator("#token-stats .token-stats"), page.locator("#truncation-warning"))
    page.fill("#id_p_max_length", "128")
    page.locator("#id_p_max_length").dispatch_event("change")
    page.wait_for_selector("#truncation-warning", state="detached", timeout=30_000)
    # Bounds come from the schema into the HTML, so the browser itself refuses an out-of-range value...
    page.fill("#id_p_epochs", "0")
    assert page.locator("#id_p_epochs").evaluate("el => !el.checkValidity()")
    # ...and what only the server can judge comes back next to its field.
    page.fill("#id_p_epochs", "1")
    page.select_option("#id_label_column", "sentence")
    page.click("#job-form button[type=submit]")
    assert "must differ" in page.locator("#label_column-error").inner_text()
    # ...and in a summary at the top of the form, which takes the focus; its link moves it to the field.
    expect(page.locator("#error-summary")).to_be_focused()
    page.click("#error-summary a[href='#id_label_column']")
    expect(page.locator("#id_label_column")).to_be_focused()
    # The long choices are shown whole (the eval dataset's "none: hold out ..." was cut off).
    assert_select_text_fits(page.locator("#id_eval_dataset"))

    page.select_option("#id_label_column", "label")
    page.fill("#id_p_max_length", "32")
    page.click("#job-form button[type=submit]")
    page.wait_for_url("**/jobs/*/")
    # The status partial is polled by htmx: the page changes without a reload.
    expect(page.locator("#job-state")).to_have_text("succeeded", timeout=240_000)
    # the curve comes with its own, slower poll (every 10 s), not with every status poll
    expect(page.locator("svg.chart polyline").first).to_be_visible(timeout=20_000)
    assert "%" in page.locator("#job-metrics").inner_text()
    with page.expect_download() as download:
        page.click("#download-adapter")
    path = download.value.path()
    assert os.path.getsize(path) > 1000
    # The playground appears once the job has succeeded (a reload: the live part is the status card).
    page.reload()
    page.fill("#id_texts", "a gripping, beautiful film\ndull")
    page.click("#playground button[type=submit]")
    page.wait_for_selector("#playground-predictions", timeout=120_000)
    assert page.locator("#playground-predictions b.predicted").count() == 2
    page.screenshot(path=str(tmp_path / "job.png"), full_page=True)
