"""Django's {# #} comment is one line only: one that wraps is printed on the page as text (issue 20, item 6)."""

from pathlib import Path

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def test_no_single_line_comment_wraps():
    wrapped = [
        f"{path.relative_to(TEMPLATES)}:{number}"
        for path in sorted(TEMPLATES.rglob("*.html"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if line.count("{#") > line.count("#}")
    ]
    assert not wrapped, f"use {{% comment %}} for a comment over several lines: {wrapped}"


def test_rendered_pages_show_no_template_comment(client, alice, dataset):
    client.force_login(alice)
    for url in ("/jobs/new/", f"/jobs/new/?dataset={dataset.pk}", "/jobs/", "/datasets/", "/team/"):
        body = client.get(url).content.decode()
        assert "{#" not in body and "#}" not in body, url
