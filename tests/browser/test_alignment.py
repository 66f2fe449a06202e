"""Layout checks in real Chromium at desktop and phone width (issue 20, items 6 and 11): the dashboard's forms
line their inputs and buttons up, and the job form's selects show their chosen text whole."""

import pytest

from teams.models import Membership
from tests.browser.pages import assert_select_text_fits, login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DESKTOP, PHONE = {"width": 1366, "height": 900}, {"width": 390, "height": 844}


def _boxes(page, selector):
    return [page.locator(selector).nth(i).bounding_box() for i in range(page.locator(selector).count())]


def test_the_dashboard_forms_line_up(page, alice, dataset):
    Membership.objects.filter(user=alice).update(role=Membership.Role.ADMIN)
    page.set_viewport_size(DESKTOP)
    login(page, "alice")
    page.goto("/team/")
    for form in ("#quota-form", "#model-add"):
        inputs = _boxes(page, f"{form} input:not([type=hidden])")
        button = page.locator(f"{form} button").bounding_box()
        assert len(inputs) >= 3
        # the inputs' bottoms level; the button sized to its text, not stretched over a grid cell
        bottoms = {round(box["y"] + box["height"]) for box in inputs}
        assert max(bottoms) - min(bottoms) <= 1, (form, inputs)
        assert button["width"] < 200, (form, button)
        if form == "#quota-form":  # three inputs leave the button room on their row: level with them
            assert abs(button["y"] + button["height"] - max(bottoms)) <= 2, (form, button, inputs)
        # styled like the job form's inputs, not the browser's bare 20 px boxes
        assert all(box["height"] >= 28 for box in inputs), (form, inputs)
    # the chart's last date ends inside the chart, and the axis name is not drawn over the dates
    chart = page.locator("section svg.chart").first.bounding_box()
    ticks = _boxes(page, "section svg.chart text.tick")
    assert all(box["x"] + box["width"] <= chart["x"] + chart["width"] + 1 for box in ticks)


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1366px", "390px"])
def test_the_job_form_shows_its_choices_whole(page, alice, sft_job, viewport):
    page.set_viewport_size(viewport)
    login(page, "alice")
    page.goto(f"/jobs/new/?dataset={sft_job.dataset.pk}&task=sft&base_model={sft_job.base_model.pk}")
    page.click("#start-from summary")
    page.click("#per-group summary")
    for field in ("task", "eval_dataset", "template", "start_from", "group_column"):
        assert_select_text_fits(page.locator(f"#id_{field}"))
