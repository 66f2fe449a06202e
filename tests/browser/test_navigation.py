"""Finding one's way by keyboard, in real Chromium: a skip link first, the current page marked in the nav, and
pages that load without a console error (the favicon's 404 was one on every page)."""

import pytest

from tests.browser.pages import login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_nav_marks_where_you_are_and_the_keyboard_can_skip_it(page, alice, dataset):
    errors, failed = [], []
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    # a load the next navigation cancels is aborted, not missing (a missing file answers 404 below)
    page.on("requestfailed", lambda request: request.failure != "net::ERR_ABORTED" and failed.append(request.url))
    page.on("response", lambda response: response.status >= 400 and failed.append(response.url))
    login(page, "alice")
    for path, current in (("/datasets/", "Datasets"), (f"/datasets/{dataset.pk}/", "Datasets"), ("/jobs/", "Jobs")):
        page.goto(path)
        page.wait_for_load_state("networkidle")
        assert page.locator('nav a[aria-current="page"]').all_inner_texts() == [current], path
    assert errors == [] and failed == [], (errors, failed)

    page.keyboard.press("Tab")
    skip = page.locator("a.skip")
    assert skip.evaluate("element => element === document.activeElement")
    assert skip.is_visible()  # off-screen until focused
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
