"""The server-side SVG charts (issue 20, item 6): round ticks in plain numbers, the x axis named for what it is
(dates on the dashboard), a smoothed trend over a noisy curve, values on hover, and a placeholder while a new
run has no points."""

import re

import pytest
from django.test import Client

from webapp.templatetags.charts import _fmt, line_chart, nice_ticks, smoothed


def test_ticks_are_round_and_written_plainly():
    assert nice_ticks(0, 10_000) == [0, 2000, 4000, 6000, 8000, 10000]
    assert nice_ticks(0.31, 0.74) == [0.4, 0.5, 0.6, 0.7]
    assert _fmt(12_000) == "12,000" and "e" not in _fmt(0.0031) and _fmt(0.5) == "0.5"


def test_smoothing_follows_the_trend_and_starts_at_the_first_value():
    points = [(i, 1.0 if i % 2 else 0.0) for i in range(200)]
    out = smoothed(points, 0.9)
    assert out[0] == (0, 0.0) and all(0.3 < y < 0.7 for _, y in out[100:])


def test_a_long_curve_is_drawn_faint_with_its_trend_and_hover_values():
    svg = line_chart({"loss": [(step, 1 / step) for step in range(1, 1001)]})
    assert 'opacity="0.3"' in svg and 'data-series="loss (smoothed)"' in svg
    titles = re.findall(r"<title>loss, step (\S+): ", svg)
    assert 40 <= len(titles) <= 60 and titles[0] == "1"
    assert ">step<" in svg and "e+" not in svg


def test_the_x_axis_can_name_its_positions():
    svg = line_chart(
        {"hours per day": [(i, i / 10) for i in range(30)]}, x_label="day", x_names={0: "Nov 7", 29: "Dec 6"}
    )
    assert ">Nov 7<" in svg and ">Dec 6<" in svg and ">day<" in svg and ">step" not in svg


@pytest.mark.django_db
def test_a_new_runs_chart_says_what_will_appear(alice, dataset, tiny_model):
    from tests.factories import job_for

    job = job_for(alice, dataset, tiny_model)
    client = Client()
    client.force_login(alice)
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert "The loss curve appears here after the first training steps" in page
