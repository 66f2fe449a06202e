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
