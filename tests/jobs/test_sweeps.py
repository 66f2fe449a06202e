"""Sweeps (issue 21): one job's settings run again for several methods and values, all or nothing; the sweep's
table scores each job; a cancel reaches every job still live. The last test trains a small sweep for real."""

import pytest
from django.test import TestCase

from jobs import runner, selectors, services
from jobs.errors import ValidationFailed
from jobs.models import Job, Sweep
from jobs.services.sweeps import sweep_points
from teams.actor import Actor
from tests.factories import dataset_from, job_for

TRAIN = "text,label\n" + "".join(f"good film {i},pos\nbad film {i},neg\n" for i in range(10))


@pytest.fixture
def base(alice, tiny_model, tiny_model_dir, tmp_path):
    path = tmp_path / "train.csv"
    path.write_text(TRAIN)
    data = dataset_from(alice, path, name="train")
    return job_for(alice, data, tiny_model, text_column="text", params={"epochs": 1, "learning_rate": 0.01})


def _sweep(alice, base, methods, grid, **more):
    with TestCase.captureOnCommitCallbacks(execute=False):
        return services.sweep_create(team=base.team, user=alice, base_job=base, methods=methods, grid=grid, **more)


def test_points_cross_methods_with_the_grid_and_a_budget_draws_a_subset():
    points = sweep_points(["lora", "ia3"], {"r": [4, 8], "learning_rate": [1e-3, 2e-3]}, None)
    # ia3 has no rank: its two rank values collapse into one
    assert len(points) == 4 + 2
    assert {"method": "ia3", "values": {"learning_rate": 1e-3}} in points
    drawn = sweep_points(["lora", "ia3"], {"r": [4, 8], "learning_rate": [1e-3, 2e-3]}, 3, seed=7)
    assert len(drawn) == 3 and all(p in points for p in drawn)
    assert drawn == sweep_points(["lora", "ia3"], {"r": [4, 8], "learning_rate": [1e-3, 2e-3]}, 3, seed=7)


def test_a_sweep_queues_one_job_per_point_with_the_bases_settings(alice, base):
    sweep = _sweep(alice, base, ["lora", "ia3"], {"r": [4, 16]})
    jobs = list(sweep.jobs.order_by("pk"))
    assert [(j.method, j.method_params.get("r")) for j in jobs] == [("lora", 4), ("lora", 16), ("ia3", None)]
    assert all(j.status == Job.Status.QUEUED and j.text_column == "text" for j in jobs)
    # what the user typed on the base job goes on; what the studio chose for it is chosen again per job
    assert all(j.params["learning_rate"] == 0.01 and j.params["epochs"] == 1 for j in jobs)
    assert jobs[0].name.endswith("lora r=4") and sweep.axes == {"methods": ["lora", "ia3"], "r": [4, 16]}


def test_a_refused_sweep_queues_nothing(alice, base):
    cases = [
        (["lora"], {"r": [4], "learning_rate": [1e-3], "epochs": [1]}, {}, "grid", "at most two"),
        (["lora"], {"r": list(range(1, 9)), "learning_rate": [1e-3, 2e-3, 3e-3, 4e-3]}, {}, "grid", "at most 24"),
        (["lora"], {"r": [8, 0]}, {}, "grid", "lora r=0"),
        (["no-such"], {}, {}, "methods", "no-such"),
        (["lora"], {"dropout": [0.1]}, {}, "grid", "not dropout"),
        (["lora"], {"r": [4, 4]}, {}, "grid.r", "different values"),
    ]
    for methods, grid, more, field, words in cases:
        with pytest.raises(ValidationFailed) as caught:
            _sweep(alice, base, methods, grid, **more)
        assert words in caught.value.errors[field], (field, caught.value.errors)
    base.team.max_concurrent_jobs = 3  # the base job is queued: one more fits, three do not
    base.team.save()
    with pytest.raises(ValidationFailed) as caught:
        _sweep(alice, base, ["lora"], {"r": [4, 8, 16]})
    assert "queues 3 jobs" in caught.value.errors["quota"]
    assert not Sweep.objects.exists() and Job.objects.count() == 1


def test_cancelling_a_sweep_cancels_its_live_jobs_only(alice, base):
    sweep = _sweep(alice, base, ["lora"], {"r": [4, 8]})
    done = sweep.jobs.order_by("pk").first()
    Job.objects.filter(pk=done.pk).update(status=Job.Status.SUCCEEDED)
    assert services.sweep_cancel(sweep=sweep, user=alice) == 1
    assert sorted(sweep.jobs.values_list("status", flat=True)) == ["cancelled", "succeeded"]
    base.refresh_from_db()
    assert base.status == Job.Status.QUEUED  # the job the sweep started from is not one of its jobs


def test_a_trained_sweep_scores_each_job_and_marks_the_best(alice, base):
    Job.objects.filter(pk=base.pk).update(status=Job.Status.SUCCEEDED)  # not in the queue's way
    sweep = _sweep(alice, base, ["lora"], {"r": [2, 8]})
    for job in sweep.jobs.all():
        assert runner.run(job.pk) == "succeeded"
    rows = selectors.sweep_rows(sweep=sweep)
    assert [row["values"] for row in rows] == [{"r": 2}, {"r": 8}]
    assert all(row["metric"] == "accuracy" and row["score"] is not None and row["seconds"] > 0 for row in rows)
    assert rows[0]["trainable"] < rows[1]["trainable"]  # rank 8 trains more than rank 2
    best = [row for row in rows if row.get("best")]
    assert len(best) == 1 and best[0]["score"] == max(row["score"] for row in rows)
    assert selectors.sweep_get(actor=Actor.of(alice.memberships.get()), sweep_id=sweep.pk) == sweep
