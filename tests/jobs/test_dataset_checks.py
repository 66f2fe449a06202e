"""A large upload is stored at once and checked row by row on the maintenance worker (jobs/dataset_checks.py):
its state, its progress, its outcome, what training and the pages make of each, and delete."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from jobs import dispatch, services
from jobs.dataset_checks import check_dataset, dataset_check_ask_again
from jobs.models import Blob, Dataset
from peftcore.data import PROGRESS_ROWS, inspect_file
from tests.factories import SST2_COLUMNS, dataset_from, job_for, team_of


@pytest.fixture
def checked_on_worker(settings):
    settings.UPLOAD_CHECK_INLINE_BYTES = 0  # every upload is "large"


def _stored(alice, path, django_capture_on_commit_callbacks, **columns):
    with django_capture_on_commit_callbacks() as callbacks:
        dataset = dataset_from(alice, path, **columns)
    return dataset, callbacks


def test_a_large_upload_is_stored_unchecked_and_the_worker_is_asked(
    checked_on_worker, alice, sst2_sample, django_capture_on_commit_callbacks, monkeypatch
):
    sent = []
    monkeypatch.setattr(dispatch, "publish", lambda task, *args: sent.append((task, args)))
    dataset, callbacks = _stored(alice, sst2_sample, django_capture_on_commit_callbacks, **SST2_COLUMNS)
    assert dataset.state == Dataset.State.CHECKING and dataset.rows == 0 and dataset.columns == []
    assert dataset.stats["asked"] == {"text_column": "sentence", "label_column": "label"}
    assert dataset.size_bytes == sst2_sample.stat().st_size and Blob.objects.filter(pk=dataset.blob_id).exists()
    for callback in callbacks:
        callback()
    assert sent == [(dispatch.CHECK_DATASET, (dataset.pk,))]

    assert check_dataset(dataset.pk) == "checked"
    dataset.refresh_from_db()
    assert dataset.state == Dataset.State.READY and dataset.progress is None
    assert dataset.rows == 200 and dataset.columns == ["sentence", "label"] and len(dataset.preview) == 10
    assert dataset.stats["label_column"] == "label" and set(dataset.stats["labels"]) == {"0", "1"}
    assert check_dataset(dataset.pk) == "nothing to do"  # a second delivery changes nothing


def test_the_worker_keeps_an_invalid_file_with_its_errors_and_training_refuses_it(
    checked_on_worker, alice, tiny_model, tmp_path, django_capture_on_commit_callbacks
):
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\ngood row,1\n,0\ntoo,many,fields\n")
    dataset, _ = _stored(alice, bad, django_capture_on_commit_callbacks, text_column="text", label_column="label")
    check_dataset(dataset.pk)
    dataset.refresh_from_db()
    assert dataset.state == Dataset.State.INVALID
    assert {e["row"] for e in dataset.stats["errors"]} >= {3, 4} and dataset.stats["error_count"] >= 2
    with pytest.raises(services.ValidationFailed) as refused:
        job_for(alice, dataset, tiny_model, text_column="text", label_column="label")
    assert "failed its check" in refused.value.errors["dataset"]

    client = Client()
    client.force_login(alice)
    page = client.get(f"/datasets/{dataset.pk}/").content.decode()
    assert 'id="dataset-invalid"' in page and "too,many" not in page  # errors, not the raw row
    assert "expected 2 fields" in page and "Train on this dataset" not in page


def test_training_waits_for_the_check_and_the_page_shows_its_progress(
    checked_on_worker, alice, sst2_sample, tiny_model, django_capture_on_commit_callbacks
):
    dataset, _ = _stored(alice, sst2_sample, django_capture_on_commit_callbacks, **SST2_COLUMNS)
    services.dataset_check_progress(dataset_id=dataset.pk, rows=120, progress=0.6)
    dataset.refresh_from_db()
    with pytest.raises(services.ValidationFailed) as refused:
        job_for(alice, dataset, tiny_model)
    assert "still being checked" in refused.value.errors["dataset"] and "60%" in refused.value.errors["dataset"]

    client = Client()
    client.force_login(alice)
    page = client.get(f"/datasets/{dataset.pk}/").content.decode()
    assert 'id="dataset-check"' in page and "120</span> rows read, 60.0% of the file" in page
    assert 'id="preview"' not in page  # nothing to preview until the check is done
    poll = client.get(f"/datasets/{dataset.pk}/check/")
    assert poll.status_code == 200 and 'value="0.600000"' in poll.content.decode()
    check_dataset(dataset.pk)
    done = client.get(f"/datasets/{dataset.pk}/check/")
    assert done.status_code == 204 and done["HX-Refresh"] == "true"  # the page reloads to show the result
    job_for(alice, Dataset.objects.get(pk=dataset.pk), tiny_model)  # accepted now


def test_a_check_whose_worker_died_is_asked_for_again_once(
    checked_on_worker, alice, sst2_sample, django_capture_on_commit_callbacks, monkeypatch
):
    dataset, _ = _stored(alice, sst2_sample, django_capture_on_commit_callbacks)
    sent = []
    monkeypatch.setattr(dispatch, "publish", lambda task, *args: sent.append(args))
    dataset_check_ask_again(dataset)
    assert sent == []  # still fresh
    Dataset.objects.filter(pk=dataset.pk).update(state_at=timezone.now() - timedelta(minutes=10))
    stale = Dataset.objects.get(pk=dataset.pk)
    dataset_check_ask_again(stale)
    dataset_check_ask_again(stale)  # a second viewer with the same stale row: not asked twice
    assert sent == [(dataset.pk,)]


def test_progress_is_reported_as_rows_and_a_share_of_the_file(tmp_path):
    path = tmp_path / "big.csv"
    rows = 2 * PROGRESS_ROWS + 5
    path.write_text("text,label\n" + "".join(f"row number {i},{i % 2}\n" for i in range(rows)))
    calls = []
    report = inspect_file(path, text_column="text", label_column="label", progress=lambda *a: calls.append(a))
    assert report["ok"] and report["rows"] == rows
    assert [n for n, _ in calls] == [PROGRESS_ROWS, 2 * PROGRESS_ROWS]
    shares = [share for _, share in calls]
    assert 0 < shares[0] < shares[1] <= 1 and shares[1] > 0.5


def test_delete_removes_the_bytes_and_refuses_while_a_job_uses_the_dataset(alice, dataset, sst2_sample, tiny_model):
    job_for(alice, dataset, tiny_model)
    client = Client()
    client.force_login(alice)
    refused = client.post(f"/datasets/{dataset.pk}/delete/", follow=True)
    assert "used by 1 job(s)" in refused.content.decode() and Dataset.objects.filter(pk=dataset.pk).exists()

    other = dataset_from(alice, sst2_sample, name="spare")
    blob_id = other.blob_id
    response = client.post(f"/datasets/{other.pk}/delete/")
    assert response.status_code == 302 and not Dataset.objects.filter(pk=other.pk).exists()
    assert not Blob.objects.filter(pk=blob_id).exists()
    assert team_of(alice).audit_entries.filter(action="dataset.delete").count() == 1
