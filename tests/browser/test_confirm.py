"""Destructive buttons ask first (issue 20, item 8), in real Chromium: dismissing the question keeps the thing,
accepting it goes ahead. Checked on Revoke (an API token) and Delete (a dataset)."""

import pytest

from jobs.models import Dataset
from teams.models import ApiToken
from teams.services import api_token_create
from tests.browser.pages import login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _answer(page, accept: bool, asked: list):
    def handle(dialog):
        asked.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    page.once("dialog", handle)


def test_revoke_and_delete_ask_before_they_act(page, alice, dataset):
    api_token_create(user=alice, name="laptop")
    login(page, "alice")
    page.goto("/account/tokens/")
    asked = []
    _answer(page, False, asked)
    page.get_by_role("button", name="Revoke").click()
    assert asked and "Revoke this token?" in asked[0]
    assert ApiToken.objects.get().revoked_at is None and page.get_by_role("button", name="Revoke").is_visible()
    _answer(page, True, asked)
    with page.expect_navigation():
        page.get_by_role("button", name="Revoke").click()
    assert ApiToken.objects.get().revoked_at is not None

    page.goto(f"/datasets/{dataset.pk}/")
    _answer(page, False, asked)
    page.locator("#dataset-delete").click()
    assert "Delete the dataset 'sst2'" in asked[-1] and Dataset.objects.filter(pk=dataset.pk).exists()
    _answer(page, True, asked)
    with page.expect_navigation():
        page.locator("#dataset-delete").click()
    assert not Dataset.objects.filter(pk=dataset.pk).exists() and page.url.endswith("/datasets/")
