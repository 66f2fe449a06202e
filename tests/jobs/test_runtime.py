"""The runtime's writes on real Postgres: atomic claims under contention, fair-share order, fenced checkpoints,
requeue and resume."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from jobs import runtime, selectors, services
from jobs.errors import Conflict
from jobs.models import Blob, Job, JobAttempt, MetricPoint
from jobs.storage import blob_create_from_chunks
from tests.factories import dataset_from, job_for


@pytest.fixture
def make_jobs(make_member, sst2_sample, tiny_model):
    """make_jobs(user, n, **fields) -> n queued jobs of the user's team, created in order."""

    def make(user, n=1, **fields):
        dataset = dataset_from(user, sst2_sample)
        jobs = []
        for _ in range(n):
            jobs.append(job := job_for(user, dataset, tiny_model))
            if fields:
                Job.objects.filter(pk=job.pk).update(**fields)
        return jobs

    return make


def _race(n: int, target) -> list:
    """Run target() in n threads released at once, each on its own database connection."""
    barrier, results, lock = threading.Barrier(n), [], threading.Lock()

    def go():
        try:
            barrier.wait()
            value = target()
            with lock:
                results.append(value)
        finally:
            connection.close()

    threads = [threading.Thread(target=go) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_claims_of_one_job_have_exactly_one_winner_every_time(alice, make_jobs):
    for _ in range(5):
        (job,) = make_jobs(alice)
        results = _race(50, lambda job=job: runtime.job_claim(job_id=job.pk, owner=f"w/{threading.get_ident()}"))
        winners = [r for r in results if r is not None]
        assert len(results) == 50 and len(winners) == 1
        job.refresh_from_db()
        assert (job.status, job.attempt, job.lease_owner) == (Job.Status.RUNNING, 1, winners[0].lease_owner)
        assert JobAttempt.objects.filter(job=job).count() == 1


@pytest.mark.django_db(transaction=True)
def test_fifty_workers_taking_the_next_job_share_five_jobs_one_each(alice, make_jobs):
    jobs = make_jobs(alice, 5)
    results = _race(50, lambda: runtime.job_claim_next(owner=f"w/{threading.get_ident()}"))
    winners = [r.pk for r in results if r is not None]
    assert sorted(winners) == sorted(j.pk for j in jobs)
    assert Job.objects.filter(status=Job.Status.RUNNING, attempt=1).count() == 5


def test_a_team_with_many_queued_jobs_cannot_starve_another(alice, bob, make_jobs):
    a_jobs = make_jobs(alice, 4)
    (b_job,) = make_jobs(bob)  # queued last
    order = selectors.queued_in_order()
    assert order[:2] == [a_jobs[0].pk, b_job.pk]  # each team's first turn comes before anyone's second
    # A team already running a job has used a turn: the other team goes first.
    runtime.job_claim(job_id=a_jobs[0].pk, owner="w/1")
    assert selectors.queued_in_order()[0] == b_job.pk
    assert selectors.queue_positions()[b_job.pk] == 1
    assert runtime.job_claim_next(owner="w/2").pk == b_job.pk


def test_priority_orders_a_teams_own_jobs(alice, make_jobs):
    low, normal = make_jobs(alice, 1, priority=Job.Priority.LOW)[0], make_jobs(alice)[0]
    high = make_jobs(alice, 1, priority=Job.Priority.HIGH)[0]
    assert selectors.queued_in_order() == [high.pk, normal.pk, low.pk]


def test_queue_positions_take_one_query_however_many_jobs_wait(alice, bob, make_jobs, django_assert_num_queries):
    make_jobs(alice, 3)
    with django_assert_num_queries(1):
        few = selectors.queue_positions()
    make_jobs(alice, 30), make_jobs(bob, 30)
    with django_assert_num_queries(1):
        many = selectors.queue_positions()
    assert sorted(few.values()) == [1, 2, 3] and sorted(many.values()) == list(range(1, 64))


def test_a_cancelled_queued_job_is_never_claimed(alice, make_jobs):
    (job,) = make_jobs(alice)
    runtime.job_cancel(job=job)
    assert runtime.job_claim(job_id=job.pk, owner="w/1") is None and runtime.job_claim_next(owner="w/1") is None
    assert Job.objects.get(pk=job.pk).status == Job.Status.CANCELLED


def _blob(data: bytes = b"checkpoint") -> Blob:
    return blob_create_from_chunks([data])


def test_a_checkpoint_replaces_the_last_and_a_stale_attempt_cannot_write_one(alice, make_jobs):
    (job,) = make_jobs(alice)
    first = runtime.job_claim(job_id=job.pk, owner="w/1")
    old_blob, new_blob = _blob(b"a"), _blob(b"b")
    assert runtime.job_checkpoint(job=first, step=4, blob=old_blob)
    assert runtime.job_checkpoint(job=first, step=8, blob=new_blob)
    assert not Blob.objects.filter(pk=old_blob.pk).exists()  # replaced, so deleted
    # The lease runs out and another worker takes the job over: the first one's writes are all refused.
    Job.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    runtime.job_reap_expired_leases()
    second = runtime.job_claim(job_id=job.pk, owner="w/2")
    assert second.attempt == 2 and second.checkpoint_step == 8
    assert not runtime.job_checkpoint(job=first, step=12, blob=_blob(b"late"))
    assert runtime.job_heartbeat(job=first, step=12) == "lost"
    assert not runtime.job_requeue(job=first, outcome="crashed", message="x", failed=True)
    assert not runtime.job_fail(job=first, kind="internal", message="x")
    job.refresh_from_db()
    assert (job.status, job.attempt, job.checkpoint_id, job.checkpoint_step, job.failures) == (
        Job.Status.RUNNING,
        2,
        new_blob.pk,
        8,
        1,
    )
    outcomes = list(JobAttempt.objects.filter(job=job).values_list("number", "outcome", "resumed_from_step"))
    assert outcomes == [(1, "lost", 0), (2, "", 8)]


def test_a_resumed_attempt_keeps_the_curve_up_to_its_checkpoint(alice, make_jobs):
    (job,) = make_jobs(alice)
    first = runtime.job_claim(job_id=job.pk, owner="w/1")
    runtime.job_heartbeat(
        job=first,
        step=10,
        total=20,
        points=[(s, "loss", 1.0 / s) for s in range(1, 11)] + [(0, "eval_loss", 0.9), (6, "eval_loss", 0.7)],
    )
    runtime.job_checkpoint(job=first, step=6, blob=_blob())
    assert runtime.job_requeue(job=first, outcome=JobAttempt.Outcome.PREEMPTED, message="worker shut down")
    job.refresh_from_db()
    assert job.status == Job.Status.QUEUED and job.failures == 0 and job.notice == "worker shut down"
    second = runtime.job_claim(job_id=job.pk, owner="w/2")
    assert second.progress_step == 6
    kept = sorted(MetricPoint.objects.filter(job=job).values_list("name", "step"))
    # Step 6's evaluation followed its checkpoint, so the resumed run evaluates it again.
    assert kept == [("eval_loss", 0)] + [("loss", s) for s in range(1, 7)]


def test_success_publishes_and_drops_the_checkpoint(alice, make_jobs):
    (job,) = make_jobs(alice)
    claimed = runtime.job_claim(job_id=job.pk, owner="w/1")
    checkpoint = _blob()
    runtime.job_checkpoint(job=claimed, step=3, blob=checkpoint)
    assert runtime.job_succeed(
        job=claimed, metrics={"accuracy": 1.0}, report={}, adapter_blob=_blob(b"zip"), filename="a.zip"
    )
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED and job.checkpoint_id is None
    assert not Blob.objects.filter(pk=checkpoint.pk).exists()
    assert JobAttempt.objects.get(job=job).outcome == "succeeded"


def test_resume_requeues_a_cancelled_job_from_its_checkpoint_and_refuses_what_cannot_resume(alice, make_jobs):
    (job,) = make_jobs(alice)
    claimed = runtime.job_claim(job_id=job.pk, owner="w/1")
    runtime.job_checkpoint(job=claimed, step=5, blob=_blob())
    Job.objects.filter(pk=job.pk).update(run_seconds=99, failures=2)
    runtime.job_cancel(job=claimed)
    assert runtime.job_heartbeat(job=claimed) == "cancel"
    runtime.job_fail(job=claimed, kind=Job.ErrorKind.CANCELLED, message="cancelled", status=Job.Status.CANCELLED)
    resumed = runtime.job_resume(job=Job.objects.get(pk=job.pk), user=alice)
    assert (resumed.status, resumed.failures, resumed.run_seconds, resumed.error_kind) == (Job.Status.QUEUED, 0, 0, "")
    assert "from step 5" in resumed.notice and "alice" in resumed.notice
    assert runtime.job_claim(job_id=job.pk, owner="w/2").progress_step == 5
    with pytest.raises(Conflict, match="running"):
        runtime.job_resume(job=Job.objects.get(pk=job.pk))
    Job.objects.filter(pk=job.pk).update(status=Job.Status.FAILED, error_kind=Job.ErrorKind.BAD_DATA)
    with pytest.raises(Conflict, match="fix"):
        runtime.job_resume(job=Job.objects.get(pk=job.pk))


@pytest.mark.parametrize(
    "fields, key",
    [
        ({"priority": 7}, "priority"),
        ({"time_limit_seconds": 30}, "time_limit"),
        ({"time_limit_seconds": 10**9}, "time_limit"),
    ],
)
def test_bad_runtime_fields_are_refused_with_the_field_named(alice, make_jobs, sst2_sample, tiny_model, fields, key):
    dataset = dataset_from(alice, sst2_sample, name="d")
    with pytest.raises(services.ValidationFailed) as exc:
        job_for(alice, dataset, tiny_model, **fields)
    assert key in exc.value.errors and Job.objects.count() == 0


def test_a_requeue_racing_a_cancel_ends_cancelled_not_queued(alice, make_jobs):
    (job,) = make_jobs(alice)
    claimed = runtime.job_claim(job_id=job.pk, owner="w/1")
    runtime.job_cancel(job=claimed)  # the user cancels just as the worker shuts down
    assert runtime.job_requeue(job=claimed, outcome=JobAttempt.Outcome.PREEMPTED, message="worker shut down")
    job.refresh_from_db()
    assert job.status == Job.Status.CANCELLED and job.finished_at is not None
    assert JobAttempt.objects.get(job=job).outcome == "cancelled"


def test_the_reaper_ends_a_queued_job_that_carries_a_cancel(alice, make_jobs, django_capture_on_commit_callbacks):
    (job,) = make_jobs(alice)
    Job.objects.filter(pk=job.pk).update(cancel_requested=True, enqueued_at=timezone.now() - timedelta(hours=1))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        result = runtime.job_reap_expired_leases()
    assert result["cancelled"] == [job.pk] and result["republished"] == [] and callbacks == []
    assert Job.objects.get(pk=job.pk).status == Job.Status.CANCELLED


def test_the_lease_is_timed_by_the_database_clock(alice, make_jobs):
    from django.db.models.functions import Now

    (job,) = make_jobs(alice)
    runtime.job_claim(job_id=job.pk, owner="w/1")
    row = Job.objects.annotate(db_now=Now()).get(pk=job.pk)
    assert abs((row.lease_expires_at - row.db_now).total_seconds() - 120) < 5
    assert abs((row.heartbeat_at - row.db_now).total_seconds()) < 5
