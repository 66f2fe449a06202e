"""The queue's reads (jobs/queue_order.py) against a plain-Python statement of the fair-share rule, on a queue of
several teams with mixed priorities, ages, running jobs and cancel requests."""

import random
from datetime import timedelta

import pytest
from django.utils import timezone

from jobs import queue_order, selectors
from jobs.models import Job
from teams.services import team_create, user_create
from tests.factories import dataset_from, job_row


def expected_order(jobs: list[Job]) -> list[int]:
    """Turn = rank within the team (priority, then age, then id) + the team's running jobs; then priority, age, id."""
    waiting = [j for j in jobs if j.status == Job.Status.QUEUED and not j.cancel_requested]
    running: dict[int, int] = {}
    for job in jobs:
        if job.status == Job.Status.RUNNING:
            running[job.team_id] = running.get(job.team_id, 0) + 1
    key = lambda j: (-j.priority, j.created_at, j.pk)  # noqa: E731
    turn = {}
    for team_id in {j.team_id for j in waiting}:
        for rank, job in enumerate(sorted((j for j in waiting if j.team_id == team_id), key=key), start=1):
            turn[job.pk] = rank + running.get(team_id, 0)
    return [j.pk for j in sorted(waiting, key=lambda j: (turn[j.pk], *key(j)))]


@pytest.fixture
def mixed_queue(sst2_sample, tiny_model):
    rng, now, jobs = random.Random(7), timezone.now(), []
    datasets = []
    for i in range(5):
        user = user_create(username=f"q{i}", password="pw", team=team_create(name=f"Queue {i}"))
        datasets.append(dataset_from(user, sst2_sample))
    for n in range(120):
        status = rng.choice([Job.Status.QUEUED] * 6 + [Job.Status.RUNNING, Job.Status.SUCCEEDED])
        jobs.append(
            job_row(
                rng.choice(datasets[: 2 + n % 4]),  # the first teams queue more
                tiny_model,
                status=status,
                priority=rng.choice([-1, 0, 0, 1]),
                created_at=now - timedelta(seconds=rng.randrange(50)),  # ties in age too: the id decides
                cancel_requested=status == Job.Status.QUEUED and rng.random() < 0.1,
            )
        )
    return jobs


def test_the_queue_reads_follow_the_fair_share_rule(mixed_queue, django_assert_num_queries):
    order = expected_order(mixed_queue)
    assert len(order) > 60
    assert selectors.queued_in_order() == order
    for limit in (1, 3, 20):  # the claim's candidates read each team's first `limit` jobs only
        assert queue_order.queue_front(limit) == order[:limit]
        assert queue_order.queue_front(limit, portable=True) == order[:limit]  # the embedded default's SQL
    asked = [j.pk for j in mixed_queue[::7]]  # queued or not, of any team
    with django_assert_num_queries(1):
        places = selectors.queue_positions(asked)
    assert places == {pk: order.index(pk) + 1 for pk in asked if pk in order}
    with django_assert_num_queries(0):
        assert selectors.queue_positions([]) == {}


def test_a_claim_takes_the_front_and_the_places_move_up(mixed_queue):
    from jobs import runtime

    order = expected_order(mixed_queue)
    claimed = runtime.job_claim_next(owner="w/1")
    assert claimed.pk == order[0]
    fresh = list(Job.objects.all())
    assert selectors.queued_in_order() == expected_order(fresh)


def test_a_worker_without_a_gpu_leaves_4bit_jobs_to_one_with(alice, make_member, sst2_sample, tiny_model):
    from jobs import runtime

    dataset = dataset_from(alice, sst2_sample)
    qlora = job_row(dataset, tiny_model, params={"quantize": "4bit"})  # first in the queue
    plain = job_row(dataset, tiny_model, params={"quantize": "none"})
    assert runtime.job_claim_next(owner="cpu/1", has_gpu=False).pk == plain.pk
    assert runtime.job_claim_next(owner="cpu/1", has_gpu=False) is None  # only the 4-bit job is left: it waits
    assert runtime.job_claim_next(owner="gpu/1", has_gpu=True).pk == qlora.pk


def test_the_eta_sent_with_a_heartbeat_counts_down_between_steps(monkeypatch):
    from jobs import supervisor

    state = supervisor.RunState()
    assert state.eta_now() is None
    now = [1000.0]
    monkeypatch.setattr(supervisor.time, "monotonic", lambda: now[0])
    state.take({"event": "progress", "step": 5, "loss": 0.5, "eta_seconds": 60.0})
    now[0] += 25  # an evaluation: no progress event for a while
    assert state.eta_now() == 35.0
    now[0] += 100
    assert state.eta_now() == 0.0
