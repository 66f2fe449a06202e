"""What a queued job needs of a worker, and why none online can run it: said on the job page instead of a job
waiting silently (a 4-bit QLoRA job with no CUDA worker, any job with no training worker)."""

from __future__ import annotations

from peftcore.quantize import FOUR_BIT

from .models import Job, WorkerHeartbeat

TRAINING_QUEUE = "training"


def waiting_reason(job: Job, workers: list[WorkerHeartbeat]) -> str | None:
    """Why no online worker can take this queued job, or None when one can (or it is not queued)."""
    if job.status != Job.Status.QUEUED:
        return None
    training = [w for w in workers if TRAINING_QUEUE in (w.info or {}).get("queues", [])]
    if not training:
        return "No training worker is online: the job starts once one is (`make studio` starts one on this machine)."
    if (job.params or {}).get("quantize") == FOUR_BIT and not any((w.info or {}).get("gpus") for w in training):
        return (
            "4-bit loading (QLoRA) needs a CUDA GPU and no online training worker has one: the job waits until a GPU "
            "worker joins. Cancel it and submit again with 4-bit loading off to train on the workers online now."
        )
    return None
