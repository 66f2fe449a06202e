import pytest

from jobs import runtime, services
from jobs.models import Job
from tests.factories import job_for


def test_dataset_create_stores_rows_columns_and_preview(dataset):
    assert dataset.rows == 200 and dataset.columns == ["sentence", "label"]
    assert dataset.preview[0]["sentence"] and len(dataset.preview) <= 10


def test_bad_file_is_refused_with_row_numbers_and_nothing_is_stored(alice, tmp_path):
    from jobs.models import Blob, Dataset

    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\ngood row,1\n,0\ntoo,many,fields\n")
    with pytest.raises(services.ValidationFailed) as exc:
        services.dataset_create(
            team=alice.memberships.get().team,
            user=alice,
            name="bad",
            path=bad,
            filename="bad.csv",
            text_column="text",
            label_column="label",
        )
    rows = {e["row"] for e in exc.value.errors}
    assert {3, 4} <= rows
    assert Dataset.objects.count() == 0 and Blob.objects.count() == 0


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"method": "nonsense"}, "method"),
        ({"text_column": "nope"}, "text_column"),
        ({"label_column": "sentence"}, "label_column"),
        ({"params": {"epochs": 0}}, "params.epochs"),
        ({"params": {"learning_rate": "fast"}}, "params.learning_rate"),
        ({"method_params": {"r": 100000}}, "method_params.r"),
        ({"params": {"bogus": 1}}, "params.bogus"),
    ],
)
def test_job_with_bad_input_is_refused_with_the_field_named(alice, dataset, tiny_model, overrides, field):
    with pytest.raises(services.ValidationFailed) as exc:
        job_for(alice, dataset, tiny_model, **overrides)
    assert field in exc.value.errors, exc.value.errors
    assert Job.objects.count() == 0


def test_job_defaults_are_filled_in(alice, dataset, tiny_model, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job = job_for(alice, dataset, tiny_model, capture=False)
    assert len(callbacks) == 1  # enqueued only once the row is committed
    assert job.status == Job.Status.QUEUED
    assert job.params["epochs"] >= 1 and job.params["batch_size"] >= 1
    assert job.method_params["r"] >= 1


def test_claim_succeeds_once_and_duplicates_find_nothing(alice, dataset, tiny_model):
    job = job_for(alice, dataset, tiny_model)
    first = runtime.job_claim(job_id=job.pk, owner="w1")
    assert first is not None and first.attempt == 1 and first.status == Job.Status.RUNNING
    assert runtime.job_claim(job_id=job.pk, owner="w2") is None


def test_writes_of_a_stale_attempt_are_refused(alice, dataset, tiny_model):
    job = job_for(alice, dataset, tiny_model)
    claimed = runtime.job_claim(job_id=job.pk, owner="w1")
    Job.objects.filter(pk=job.pk).update(attempt=2)  # another worker took over
    assert runtime.job_heartbeat(job=claimed, step=3, total=10) == "lost"
    assert not runtime.job_fail(job=claimed, kind="internal", message="x")
    assert Job.objects.get(pk=job.pk).progress_step == 0


def test_cancel_of_a_queued_job_is_immediate_and_it_is_never_claimed(alice, dataset, tiny_model):
    job = job_for(alice, dataset, tiny_model)
    job = runtime.job_cancel(job=job)
    assert job.status == Job.Status.CANCELLED
    assert runtime.job_claim(job_id=job.pk, owner="w1") is None


def test_cancel_of_a_running_job_is_seen_by_its_heartbeat(alice, dataset, tiny_model):
    job = job_for(alice, dataset, tiny_model)
    claimed = runtime.job_claim(job_id=job.pk, owner="w1")
    assert runtime.job_heartbeat(job=claimed, step=1, total=10, points=[(1, "loss", 0.7)]) == "ok"
    runtime.job_cancel(job=job)
    assert runtime.job_heartbeat(job=claimed, step=2, total=10) == "cancel"
    assert claimed.metric_points.count() == 1


def test_expired_lease_is_requeued_then_failed_at_the_cap(
    alice, dataset, tiny_model, django_capture_on_commit_callbacks
):
    from datetime import timedelta

    from django.utils import timezone

    job = job_for(alice, dataset, tiny_model)
    runtime.job_claim(job_id=job.pk, owner="w1")
    Job.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert runtime.job_reap_expired_leases(max_failures=2)["requeued"] == [job.pk]
    assert len(callbacks) == 1 and Job.objects.get(pk=job.pk).status == Job.Status.QUEUED
    runtime.job_claim(job_id=job.pk, owner="w2")
    Job.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert runtime.job_reap_expired_leases(max_failures=2)["failed"] == [job.pk]
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED and job.error_kind == "lost"


def test_loss_curve_is_thinned_in_the_database_but_keeps_evaluations_and_the_last_step(alice, dataset, tiny_model):
    from jobs.selectors import job_metric_series

    job = job_for(alice, dataset, tiny_model)
    claimed = runtime.job_claim(job_id=job.pk, owner="w1")
    points = [(step, "loss", 1.0 / step) for step in range(1, 1002)] + [
        (500, "eval_loss", 0.5),
        (1001, "eval_loss", 0.4),
    ]
    runtime.job_heartbeat(job=claimed, step=1001, total=1001, points=points)
    claimed.refresh_from_db()
    series = job_metric_series(job=claimed, names=("loss", "eval_loss"), max_points=100)
    assert 90 <= len(series["loss"]) <= 102
    assert series["loss"][-1] == (1001, 1.0 / 1001)
    assert series["eval_loss"] == [(500, 0.5), (1001, 0.4)]
