"""Columns picked after the upload, from the file's own (issue 20, item 9): the label counts follow the choice;
a choice with errors changes nothing and says which rows; a large file is checked again on the worker."""

import pytest
from django.test import Client

from jobs import dispatch
from jobs.models import Dataset
from tests.factories import dataset_from

pytestmark = pytest.mark.django_db


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_columns_are_picked_from_the_preview_and_the_labels_counted(alice, bob, sst2_sample):
    dataset = dataset_from(alice, sst2_sample)  # uploaded without naming any column
    assert "labels" not in dataset.stats
    page = _client(alice).get(f"/datasets/{dataset.pk}/").content.decode()
    assert 'id="dataset-columns"' in page and "<option>sentence</option>" in page
    assert _client(bob).post(f"/datasets/{dataset.pk}/columns/", {"label_column": "label"}).status_code == 404
    _client(alice).post(f"/datasets/{dataset.pk}/columns/", {"text_column": "sentence", "label_column": "label"})
    dataset.refresh_from_db()
    assert dataset.stats["label_column"] == "label" and set(dataset.stats["labels"]) == {"0", "1"}
    assert sum(dataset.stats["labels"].values()) == 200 and dataset.stats["text_column"] == "sentence"
    page = _client(alice).get(f"/datasets/{dataset.pk}/").content.decode()
    assert "<option selected>label</option>" in page and "Labels in “label”" in page


def test_a_choice_with_errors_changes_nothing_and_says_why(alice, tmp_path):
    path = tmp_path / "gaps.csv"
    path.write_text("text,label,note\nfine,1,a\nalso fine,,b\n")
    dataset = dataset_from(alice, path, text_column="text")
    response = _client(alice).post(
        f"/datasets/{dataset.pk}/columns/", {"text_column": "text", "label_column": "label"}, follow=True
    )
    assert "has 1 error(s); nothing was changed" in response.content.decode()
    assert "row 3" in response.content.decode()
    dataset.refresh_from_db()
    assert "label_column" not in dataset.stats
    unknown = _client(alice).post(f"/datasets/{dataset.pk}/columns/", {"label_column": "nope"}, follow=True)
    assert "&#x27;nope&#x27; is not a column" in unknown.content.decode()


def test_a_large_file_is_checked_again_on_the_worker(
    alice, sst2_sample, settings, monkeypatch, django_capture_on_commit_callbacks
):
    dataset = dataset_from(alice, sst2_sample)
    settings.UPLOAD_CHECK_INLINE_BYTES = 100
    sent = []
    monkeypatch.setattr(dispatch, "publish", lambda task, *args: sent.append((task, args)))
    with django_capture_on_commit_callbacks(execute=True):
        _client(alice).post(f"/datasets/{dataset.pk}/columns/", {"label_column": "label"})
    dataset.refresh_from_db()
    assert dataset.state == Dataset.State.CHECKING and dataset.stats["asked"]["label_column"] == "label"
    assert sent == [(dispatch.CHECK_DATASET, (dataset.pk,))]


def test_labels_get_names_that_reports_show(alice, bob, sst2_sample, tiny_model):
    from jobs.models import EvalReport, Job
    from tests.factories import job_row

    dataset = dataset_from(alice, sst2_sample, label_column="label", text_column="sentence")
    client = _client(alice)
    page = client.get(f"/datasets/{dataset.pk}/").content.decode()
    assert 'id="label-names"' in page and 'name="label_0"' in page and 'name="label_1"' in page
    order = list(dataset.stats["labels"])  # the fields follow the counts' order
    client.post(
        f"/datasets/{dataset.pk}/labels/",
        {f"label_{order.index('0')}": "negative", f"label_{order.index('1')}": " positive "},
    )
    dataset.refresh_from_db()
    assert dataset.stats["label_names"] == {"0": "negative", "1": "positive"}
    clash = client.post(f"/datasets/{dataset.pk}/labels/", {"label_0": "same", "label_1": "same"}, follow=True)
    assert "would both be called" in clash.content.decode()
    assert _client(bob).post(f"/datasets/{dataset.pk}/labels/", {"label_0": "x"}).status_code == 404

    job = job_row(dataset, tiny_model, status=Job.Status.SUCCEEDED, label_column="label", text_column="sentence")
    EvalReport.objects.create(
        job=job,
        data={
            "labels": ["0", "1"],
            "confusion_matrix": [[40, 10], [5, 45]],
            "per_class": {"0": {"precision": 0.9, "recall": 0.8, "f1": 0.85, "support": 50}},
        },
    )
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert "<td>negative</td>" in page and ">positive<" in page  # the per-class table and the confusion matrix


def test_a_large_ready_file_whose_new_columns_fail_stays_as_it_was(alice, tmp_path, settings):
    from jobs.dataset_checks import check_dataset

    path = tmp_path / "gaps.csv"
    path.write_text("text,label,note\nfine,1,a\nalso fine,0,\n")
    dataset = dataset_from(alice, path, text_column="text", label_column="label")
    before = dict(dataset.stats)
    settings.UPLOAD_CHECK_INLINE_BYTES = 10
    _client(alice).post(f"/datasets/{dataset.pk}/columns/", {"text_column": "text", "label_column": "note"})
    assert Dataset.objects.get(pk=dataset.pk).state == Dataset.State.CHECKING
    check_dataset(dataset.pk)  # the worker: 'note' is empty in row 3
    dataset.refresh_from_db()
    assert dataset.state == Dataset.State.READY and dataset.rows == 2
    assert dataset.stats["labels"] == before["labels"] and dataset.stats["label_column"] == "label"
    assert dataset.stats["column_errors"][0]["row"] == 3
    page = _client(alice).get(f"/datasets/{dataset.pk}/").content.decode()
    assert 'id="column-errors"' in page and "The columns were not changed" in page
