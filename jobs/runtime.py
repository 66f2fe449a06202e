"""The job runtime's writes: enqueue, claim, heartbeat, checkpoint, requeue, finish, reap, cancel, resume.

Postgres is the source of truth; the broker only carries "a job is ready". A worker claims with one
conditional UPDATE that bumps `attempt`, and every later write of that attempt is conditional on the row still
carrying it (a fencing token): a worker that was stopped or cut off past its lease can never overwrite the
work of the one that took over.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Case, F, Q, Value, When
from django.db.models.functions import Coalesce, Now
from django.utils import timezone

from peftcore.quantize import FOUR_BIT
from teams.audit import audit_record

from . import dispatch
from .errors import Conflict
from .models import Artifact, Blob, EvalReport, Job, JobAttempt, MetricPoint
from .selectors import queued_in_order

log = logging.getLogger(__name__)

# How many of the front jobs a claim tries before giving up (others won the rest in the meantime).
CLAIM_CANDIDATES = 20
NO_RETRY_KINDS = (Job.ErrorKind.BAD_DATA, Job.ErrorKind.BAD_PARAMS)


def _lease_until():
    # The database's clock, not this host's: the reaper compares it with the same clock, so a worker whose
    # clock drifts can neither keep a dead lease alive nor lose a live one.
    return Now() + timedelta(seconds=settings.JOB_LEASE_SECONDS)


def job_enqueue(*, job_id: int) -> None:
    dispatch.publish(dispatch.RUN_JOB, job_id)


def job_enqueue_on_commit(job_id: int) -> None:
    # A broker that is down does not fail the write: the reaper publishes the job again.
    dispatch.publish_on_commit(dispatch.RUN_JOB, job_id)


def job_claim(*, job_id: int, owner: str, has_gpu: bool = True) -> Job | None:
    """QUEUED -> RUNNING in one conditional UPDATE; a duplicate delivery finds nothing to claim, and a worker
    without a GPU does not take a job that needs one (4-bit loading): it waits for a GPU worker."""
    now = timezone.now()
    claimable = Job.objects.filter(pk=job_id, status=Job.Status.QUEUED, cancel_requested=False)
    if not has_gpu:
        claimable = claimable.exclude(params__quantize=FOUR_BIT)
    with transaction.atomic():
        claimed = claimable.update(
            status=Job.Status.RUNNING,
            attempt=F("attempt") + 1,
            lease_owner=owner,
            lease_expires_at=_lease_until(),
            heartbeat_at=Now(),
            started_at=Coalesce(F("started_at"), Value(now)),
            progress_step=F("checkpoint_step"),
            last_loss=None,
            eta_seconds=None,  # the last attempt's estimate no longer holds
            phase="starting the training process",
        )
        if not claimed:
            return None
        job = Job.objects.select_related("dataset__blob", "eval_dataset__blob", "base_model").get(pk=job_id)
        # The curve goes on from the checkpoint: what the last attempt drew after it would be drawn twice. A
        # checkpoint precedes its step's evaluation (an epoch's end), which the resumed run emits again.
        MetricPoint.objects.filter(
            Q(step__gt=job.checkpoint_step) | Q(step=job.checkpoint_step, name__startswith="eval_"), job_id=job_id
        ).delete()
        JobAttempt.objects.create(
            job=job,
            number=job.attempt,
            worker=owner,
            resumed_from_step=job.checkpoint_step,
            micro_batch_size=job.micro_batch_size,
            started_at=now,
        )
    return job


def job_claim_next(*, owner: str, has_gpu: bool = True) -> Job | None:
    """Claim the job whose turn it is (fair share across teams, then priority, then age). A message says only
    that some job is ready, so any worker with a free slot takes the front of the queue."""
    for job_id in queued_in_order(limit=CLAIM_CANDIDATES):
        job = job_claim(job_id=job_id, owner=owner, has_gpu=has_gpu)
        if job is not None:
            return job
    return None


def _fenced(job: Job):
    return Job.objects.filter(pk=job.pk, attempt=job.attempt, status=Job.Status.RUNNING)


def _end_attempt(job: Job, outcome: str, message: str = "") -> None:
    JobAttempt.objects.filter(job_id=job.pk, number=job.attempt, ended_at__isnull=True).update(
        ended_at=timezone.now(), outcome=outcome, message=message[:1000]
    )


def job_heartbeat(
    *,
    job: Job,
    step: int | None = None,
    total: int | None = None,
    loss: float | None = None,
    points: list[tuple[int, str, float]] = (),
    run_seconds: float | None = None,
    device: str | None = None,
    eta_seconds: float | None = None,
    phase: str | None = None,
) -> str:
    """One batched write: metric points, progress, training time, the child's ETA and lease renewal.
    Returns "ok", "cancel" or "lost"."""
    fields = {"lease_expires_at": _lease_until(), "heartbeat_at": Now()}
    for name, value in (
        ("progress_step", step),
        ("progress_total", total),
        ("last_loss", loss),
        ("run_seconds", run_seconds),
        ("device", device),
        ("eta_seconds", eta_seconds),
        ("phase", phase),
    ):
        if value is not None:
            fields[name] = value
    with transaction.atomic():
        # The attempt still owns a job its user asked to cancel: it keeps writing while it checkpoints and stops.
        if not _fenced(job).update(**fields):
            return "lost"
        if points:
            MetricPoint.objects.bulk_create(
                [MetricPoint(job_id=job.pk, step=s, name=n, value=v) for s, n, v in points], batch_size=1000
            )
        cancel = _fenced(job).filter(cancel_requested=True).exists()
    return "cancel" if cancel else "ok"


def job_checkpoint(*, job: Job, step: int, blob: Blob) -> bool:
    """Record a checkpoint the runner stored; the one it replaces is deleted. False: the lease is gone."""
    with transaction.atomic():
        row = _fenced(job).select_for_update().only("checkpoint_id").first()
        if row is None:
            return False
        previous = row.checkpoint_id
        Job.objects.filter(pk=job.pk).update(checkpoint=blob, checkpoint_step=step)
        if previous and previous != blob.pk:
            Blob.objects.filter(pk=previous).delete()
    job.checkpoint_id, job.checkpoint_step = blob.pk, step
    return True


def job_requeue(
    *, job: Job, outcome: str, message: str, failed: bool = False, micro_batch_size: int | None = None
) -> bool:
    """Give the job back to the queue; the next attempt resumes from its checkpoint. `failed` counts the
    attempt against JOB_MAX_FAILURES (a crash does, a preemption or an out-of-memory retry does not)."""
    fields = {
        "status": Job.Status.QUEUED,
        "lease_owner": "",
        "lease_expires_at": None,
        "enqueued_at": timezone.now(),
        "notice": message[:500],
    }
    if failed:
        fields["failures"] = F("failures") + 1
    if micro_batch_size is not None:
        fields["micro_batch_size"] = micro_batch_size
    with transaction.atomic():
        # A user who asked to cancel meanwhile gets a cancelled job, not one queued again.
        if (
            _fenced(job)
            .filter(cancel_requested=True)
            .update(**_cancelled_fields(f"cancelled by a user{resume_hint(job)}"))
        ):
            _end_attempt(job, JobAttempt.Outcome.CANCELLED, message)
            return True
        if not _fenced(job).update(**fields):
            return False
        _end_attempt(job, outcome, message)
        job_enqueue_on_commit(job.pk)
    return True


def _cancelled_fields(message: str) -> dict:
    return {
        "status": Job.Status.CANCELLED,
        "error_kind": Job.ErrorKind.CANCELLED,
        "error_message": message,
        "finished_at": timezone.now(),
        "lease_expires_at": None,
        "lease_owner": "",
    }


def job_succeed(*, job: Job, metrics: dict, report: dict, adapter_blob: Blob, filename: str) -> bool:
    with transaction.atomic():
        row = _fenced(job).select_for_update().only("checkpoint_id").first()
        if row is None:
            return False
        Job.objects.filter(pk=job.pk).update(
            status=Job.Status.SUCCEEDED,
            metrics=metrics,
            finished_at=timezone.now(),
            progress_step=F("progress_total"),
            lease_expires_at=None,
            checkpoint=None,
        )
        if row.checkpoint_id:  # the adapter is what a finished job keeps
            Blob.objects.filter(pk=row.checkpoint_id).delete()
        Artifact.objects.create(
            job=job,
            kind=Artifact.Kind.ADAPTER,
            filename=filename,
            blob=adapter_blob,
            size_bytes=adapter_blob.size,
            sha256=adapter_blob.sha256,
        )
        EvalReport.objects.update_or_create(job=job, defaults={"data": report})
        _end_attempt(job, JobAttempt.Outcome.SUCCEEDED)
    return True


def job_fail(
    *, job: Job, kind: str, message: str, status: str = Job.Status.FAILED, outcome: str = "", failed: bool = False
) -> bool:
    """End the job. `failed`: this attempt also counts as a failure (the last crash before the cap)."""
    fields = {"failures": F("failures") + 1} if failed else {}
    with transaction.atomic():
        if not _fenced(job).update(
            status=status,
            error_kind=kind,
            error_message=message[:4000],
            finished_at=timezone.now(),
            lease_expires_at=None,
            **fields,
        ):
            return False
        _end_attempt(
            job,
            outcome or (JobAttempt.Outcome.CANCELLED if status == Job.Status.CANCELLED else JobAttempt.Outcome.FAILED),
            message,
        )
    return True


def job_attempt_lost(*, job: Job, message: str) -> None:
    """A runner that found its lease gone records how its own attempt ended (the job is no longer its)."""
    _end_attempt(job, JobAttempt.Outcome.LOST, message)


def resume_point(step: int, checkpoint_id: int | None) -> str:
    """Where the next attempt of a job starts, in words."""
    return f"step {step}" if checkpoint_id else "the start (no checkpoint yet)"


def resume_hint(job: Job) -> str:
    """What a resume would do, for the messages that end a job."""
    return f"; resume it to go on from step {job.checkpoint_step}" if job.checkpoint_id else ""


def job_reap_expired_leases(*, max_failures: int | None = None) -> dict:
    """Jobs whose runner stopped renewing its lease (its worker died or was cut off) go back to the queue from
    their last checkpoint, until JOB_MAX_FAILURES; queued jobs whose broker message may be lost are published
    again. Rows another reaper holds are skipped, so two beats never requeue a job twice."""
    max_failures = max_failures or settings.JOB_MAX_FAILURES
    now = timezone.now()
    result = {"requeued": [], "failed": [], "cancelled": [], "republished": []}
    with transaction.atomic():
        expired = list(
            Job.objects.filter(status=Job.Status.RUNNING, lease_expires_at__lt=Now())
            .select_for_update(skip_locked=True)
            .values_list("pk", "attempt", "failures", "cancel_requested", "checkpoint_step", "checkpoint_id")
        )
        for pk, attempt, failures, cancel_requested, step, checkpoint_id in expired:
            lost_message = f"its worker stopped answering (lease expired at attempt {attempt})"
            JobAttempt.objects.filter(job_id=pk, number=attempt, ended_at__isnull=True).update(
                ended_at=now, outcome=JobAttempt.Outcome.LOST, message=lost_message
            )
            row = Job.objects.filter(pk=pk, attempt=attempt)
            if cancel_requested:  # a job its user cancelled needs no retry, whatever stopped its worker
                row.update(
                    status=Job.Status.CANCELLED,
                    error_kind=Job.ErrorKind.CANCELLED,
                    finished_at=now,
                    lease_expires_at=None,
                    error_message="cancelled by a user (its worker stopped before confirming)",
                )
                result["cancelled"].append(pk)
            elif failures + 1 >= max_failures:
                row.update(
                    status=Job.Status.FAILED,
                    error_kind=Job.ErrorKind.LOST,
                    finished_at=now,
                    lease_expires_at=None,
                    failures=failures + 1,
                    error_message=f"the worker running this job stopped answering {failures + 1} time(s); "
                    f"giving up; resume it to go on from "
                    f"{resume_point(step, checkpoint_id)}",
                )
                result["failed"].append(pk)
            else:
                row.update(
                    status=Job.Status.QUEUED,
                    lease_owner="",
                    lease_expires_at=None,
                    enqueued_at=now,
                    failures=failures + 1,
                    notice=f"{lost_message}; queued again" + f" to go on from {resume_point(step, checkpoint_id)}",
                )
                result["requeued"].append(pk)
                job_enqueue_on_commit(pk)
        # A queued job whose cancel raced its requeue ends cancelled rather than waiting for a claim that
        # would skip it forever.
        result["cancelled"] += list(
            Job.objects.filter(status=Job.Status.QUEUED, cancel_requested=True)
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)
        )
        Job.objects.filter(pk__in=result["cancelled"], status=Job.Status.QUEUED).update(
            **_cancelled_fields("cancelled by a user")
        )
        stale = list(
            Job.objects.filter(
                status=Job.Status.QUEUED, enqueued_at__lt=now - timedelta(seconds=settings.JOB_REPUBLISH_SECONDS)
            )
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)
        )
        Job.objects.filter(pk__in=stale).update(enqueued_at=now)
        for pk in stale:
            job_enqueue_on_commit(pk)
        result["republished"] = stale
    return result


def job_cancel(*, job: Job, user=None) -> Job:
    """A queued job is cancelled at once and never starts; a running one is asked to stop: its runner stops
    the training process (which checkpoints first) within RUNNER_FLUSH_SECONDS + RUNNER_STOP_GRACE_SECONDS.
    One UPDATE, so a job moving between queued and running meanwhile cannot slip past it."""
    queued = Q(status=Job.Status.QUEUED)

    def if_queued(field: str, value):
        return Case(When(queued, then=Value(value)), default=F(field), output_field=Job._meta.get_field(field))

    with transaction.atomic():
        if (
            Job.objects.filter(pk=job.pk, status__in=(Job.Status.QUEUED, Job.Status.RUNNING)).update(
                cancel_requested=True,
                status=if_queued("status", Job.Status.CANCELLED),
                finished_at=if_queued("finished_at", timezone.now()),
                error_kind=if_queued("error_kind", Job.ErrorKind.CANCELLED),
                error_message=if_queued("error_message", "cancelled before it started"),
            )
            and user is not None
        ):
            audit_record(team_id=job.team_id, user=user, action="job.cancel", target=f"job {job.pk}")
    job.refresh_from_db()
    return job


def job_resume(*, job: Job, user=None) -> Job:
    """Queue a cancelled, failed or timed-out job again; it goes on from its last checkpoint (or starts over
    when it has none) with a fresh time limit and failure count."""
    if job.status not in (Job.Status.FAILED, Job.Status.CANCELLED):
        raise Conflict(f"job #{job.pk} is {job.status}; only a failed or cancelled job can be resumed")
    if job.error_kind in NO_RETRY_KINDS:
        raise Conflict(
            "this job failed on its data or settings and would fail again the same way; fix "
            "what the error names and submit a new job"
        )
    step = job.checkpoint_step if job.checkpoint_id else 0
    who = f" by {user.get_username()}" if user is not None else ""
    with transaction.atomic():
        resumed = Job.objects.filter(pk=job.pk, status__in=(Job.Status.FAILED, Job.Status.CANCELLED)).update(
            status=Job.Status.QUEUED,
            cancel_requested=False,
            failures=0,
            run_seconds=0,
            error_kind="",
            error_message="",
            finished_at=None,
            enqueued_at=timezone.now(),
            checkpoint_step=step,
            notified_at=None,  # its next ending notifies again (jobs.notifications)
            notice=f"resumed{who} " + (f"from step {step}" if step else "from the start (no checkpoint was saved)"),
        )
        if resumed:
            job_enqueue_on_commit(job.pk)
            if user is not None:
                audit_record(
                    team_id=job.team_id, user=user, action="job.resume", target=f"job {job.pk}", from_step=step
                )
    job.refresh_from_db()
    return job
