"""Thin Celery entry points: the message carries only a job id; Postgres holds the state."""

from celery import shared_task
from django.conf import settings

from . import runner


@shared_task(name="jobs.run_job", ignore_result=True, bind=True)
def run_job(self, job_id: int | None) -> str:
    from .notifications import notifications_kick
    from .workers import shutting_down

    outcomes = []
    try:
        # One job, then the next queued one while there is one: a lost message never leaves a job waiting
        # beside a free worker (jobs/idle_workers.py).
        while (outcome := runner.run(job_id, worker=self.request.hostname or "")) != runner.NOTHING:
            outcomes.append(outcome)
            if not settings.JOB_CLAIM_NEXT or shutting_down() or outcome in runner.GIVEN_BACK:
                break
            notifications_kick()  # that job ended: notify before the next one runs
    finally:  # the job may have ended: notify now rather than at the next beat
        notifications_kick()
    return "; ".join(outcomes) or runner.NOTHING


@shared_task(name="jobs.reap_expired_leases", ignore_result=True)
def reap_expired_leases() -> dict:
    from .notifications import notifications_kick
    from .runtime import job_reap_expired_leases

    result = job_reap_expired_leases()
    if result["failed"] or result["cancelled"]:
        notifications_kick()
    return result


@shared_task(name="jobs.send_notifications", ignore_result=True)
def send_notifications() -> dict:
    from .notifications import notifications_sweep

    return notifications_sweep()


@shared_task(name="jobs.sweep_storage", ignore_result=True)
def sweep_storage() -> dict:
    from .services import storage_sweep

    sweep = storage_sweep()
    return {"blobs": sweep.blobs, "blob_bytes": sweep.blob_bytes, "files": sweep.files, "file_bytes": sweep.file_bytes}


@shared_task(name="jobs.profile_base_model", ignore_result=True)
def profile_base_model(model_id: int) -> str:
    from .profiles import profile_base_model as run_profile

    return run_profile(model_id)


@shared_task(name="jobs.prepare_base_model", ignore_result=True)
def prepare_base_model(model_id: int) -> str:
    from .model_folders import prepare_base_model as prepare

    return prepare(model_id)


@shared_task(name="jobs.export_merged", ignore_result=True)
def export_merged(export_id: int) -> str:
    from .merged_exports import export_merged as export

    return export(export_id)


@shared_task(name="jobs.count_trainable", ignore_result=True)
def count_trainable(count_id: int) -> str:
    from .profiles import count_trainable as run_count

    return run_count(count_id)


@shared_task(name="jobs.count_tokens", ignore_result=True)
def count_tokens(stats_id: int) -> str:
    from .profiles import count_tokens as run_count

    return run_count(stats_id)


@shared_task(name="jobs.playground_predict", ignore_result=True)
def playground_predict(run_id: int) -> str:
    from .playground import predict

    return predict(run_id)


@shared_task(name="jobs.check_dataset", ignore_result=True)
def check_dataset(dataset_id: int) -> str:
    from .dataset_checks import check_dataset as run_check

    return run_check(dataset_id)
