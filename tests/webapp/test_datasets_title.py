"""The browser tab shows the page's title, so the title holds text only: the datasets page once carried its upload
script inside `{% block title %}`, and the tab showed JavaScript."""

import re

from django.urls import reverse

from tests.conftest import REPO

TITLE = re.compile(r"<title>(.*?)</title>", re.S)
TITLE_BLOCK = re.compile(r"{%\s*block title\s*%}(.*?){%\s*endblock", re.S)


def test_the_datasets_page_title_is_text_and_its_upload_script_is_a_static_file(client):
    html = client.get(reverse("dataset-list")).content.decode()
    titles = TITLE.findall(html)
    assert titles == ["Datasets · Fine-tuning studio"], titles
    # No inline script at all (the Content-Security-Policy refuses it): the upload progress lives in studio.js.
    assert "htmx:xhr:progress" not in html and 'id="upload-progress"' in html
    assert 'src="/static/webapp/studio.js"' in html
    assert "htmx:xhr:progress" in (REPO / "webapp/static/webapp/studio.js").read_text()


def test_no_template_puts_markup_in_its_title():
    blocks = {
        path.relative_to(REPO).as_posix(): block
        for path in (REPO / "templates").rglob("*.html")
        for block in TITLE_BLOCK.findall(path.read_text(encoding="utf-8"))
    }
    assert blocks, "no title block found: has base.html's block been renamed?"
    assert not {path: block for path, block in blocks.items() if "<" in block}
