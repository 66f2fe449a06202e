"""Helpers for the browser tests (the `page` fixture is in conftest.py)."""

import shutil

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def login(page, username):
    page.goto("/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "pw-" + username)
    page.click("button[type=submit]")
    page.wait_for_url("**/jobs/")
