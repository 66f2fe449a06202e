"""A queued job that no online worker can run says why on its page, instead of waiting silently."""

from django.utils import timezone

from jobs.models import Job, WorkerHeartbeat
from tests.factories import job_for


def worker(name: str, queues: list[str], gpus: list[dict]) -> WorkerHeartbeat:
    return WorkerHeartbeat.objects.create(hostname=name, info={"queues": queues, "gpus": gpus}, seen_at=timezone.now())


def reason(client, job) -> str | None:
    html = client.get(f"/jobs/{job.pk}/status/").content.decode()
    if 'id="waiting-reason"' not in html:
        return None
    return html.split('id="waiting-reason" role="status">')[1].split("</p>")[0]


def test_a_queued_job_says_what_no_online_worker_has(client, alice, dataset, tiny_model):
    plain = job_for(alice, dataset, tiny_model, text_column="sentence", label_column="label")
    qlora = job_for(
        alice, dataset, tiny_model, text_column="sentence", label_column="label", params={"quantize": "4bit"}
    )
    assert "No training worker is online" in reason(client, plain)
    worker("maintenance@cpu", ["maintenance"], [])  # not a training worker
    assert "No training worker is online" in reason(client, qlora)
    worker("training@cpu", ["training"], [])
    assert reason(client, plain) is None
    assert "needs a CUDA GPU and no online training worker has one" in reason(client, qlora)
    worker("training@gpu", ["training"], [{"name": "NVIDIA H100", "memory_total_mib": 81559}])
    assert reason(client, qlora) is None
    WorkerHeartbeat.objects.filter(hostname="training@gpu").update(stopped=True)  # a worker that left
    assert "needs a CUDA GPU" in reason(client, qlora)
    Job.objects.filter(pk=qlora.pk).update(status=Job.Status.RUNNING)
    assert reason(client, qlora) is None  # only queued jobs wait


def test_a_running_jobs_eta_is_the_childs_less_the_time_since_it_said_so(alice, dataset, tiny_model):
    from datetime import timedelta

    from jobs import selectors

    job = job_for(alice, dataset, tiny_model, text_column="sentence", label_column="label")
    Job.objects.filter(pk=job.pk).update(
        status=Job.Status.RUNNING,
        started_at=timezone.now() - timedelta(seconds=100),
        run_seconds=100,
        progress_step=1,
        progress_total=100,
    )
    job.refresh_from_db()
    assert selectors.job_progress(job)["eta_seconds"] == 9900  # no estimate yet: the rate so far, load included
    Job.objects.filter(pk=job.pk).update(eta_seconds=120, heartbeat_at=timezone.now() - timedelta(seconds=20))
    job.refresh_from_db()
    assert 99 <= selectors.job_progress(job)["eta_seconds"] <= 100


def test_the_chart_is_sent_only_when_the_run_has_drawn_more(client, alice, dataset, tiny_model):
    from jobs.models import MetricPoint

    job = job_for(alice, dataset, tiny_model, text_column="sentence", label_column="label")
    Job.objects.filter(pk=job.pk).update(status=Job.Status.RUNNING, progress_step=300, progress_total=1000)
    MetricPoint.objects.bulk_create([MetricPoint(job=job, step=s, name="loss", value=1 / s) for s in range(1, 301)])
    status = client.get(f"/jobs/{job.pk}/status/").content.decode()
    assert "<svg" not in status  # the 2-second poll carries the status line, not the curve
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert 'id="job-chart"' in page and "<svg" in page and "drawn=running-300" in page
    assert client.get(f"/jobs/{job.pk}/chart/?drawn=running-300").status_code == 204  # nothing new: no body
    Job.objects.filter(pk=job.pk).update(progress_step=310)
    moved = client.get(f"/jobs/{job.pk}/chart/?drawn=running-300")
    assert (
        moved.status_code == 200 and "<svg" in moved.content.decode() and "drawn=running-310" in moved.content.decode()
    )
    Job.objects.filter(pk=job.pk).update(status=Job.Status.SUCCEEDED)
    final = client.get(f"/jobs/{job.pk}/chart/?drawn=running-310")
    assert final.status_code == 286 and "hx-get" not in final.content.decode()  # drawn once more, then no poll


def test_another_teams_chart_is_a_404(client, bob, sst2_sample, tiny_model):
    from tests.factories import dataset_from

    theirs = job_for(bob, dataset_from(bob, sst2_sample), tiny_model, text_column="sentence", label_column="label")
    assert client.get(f"/jobs/{theirs.pk}/chart/").status_code == 404


def test_a_running_job_shows_what_it_is_doing(client, alice, dataset, tiny_model):
    from jobs import runtime

    job = job_for(alice, dataset, tiny_model, text_column="sentence", label_column="label")
    claimed = runtime.job_claim(job_id=job.pk, owner="w/1")
    assert "Starting the training process" in client.get(f"/jobs/{job.pk}/status/").content.decode()
    assert runtime.job_heartbeat(job=claimed, phase="loading the model on the CPU") == "ok"
    html = client.get(f"/jobs/{job.pk}/status/").content.decode()
    assert '<span id="job-phase">Loading the model on the CPU</span>' in html
