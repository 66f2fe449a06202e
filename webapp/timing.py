"""The job runtime's timings must nest, or its promises break: a lease shorter than two heartbeats is lost
to one slow write; a time limit shorter than the lease stops jobs before a dead worker is even noticed; a
broker visibility timeout shorter than the longest job makes Redis hand a running job's message out again.
Checked when settings load, so a bad combination fails at start-up with what to change."""

from django.core.exceptions import ImproperlyConfigured

# A running job stops this many seconds at most after its user cancels it (the promise the job page makes).
CANCEL_SECONDS = 30


def timing_errors(
    *,
    heartbeat: float,
    lease: float,
    time_limit: float,
    time_limit_max: float,
    visibility: float,
    stop_grace: float,
    reap: float,
) -> list[str]:
    rules = [
        (heartbeat > 0, f"RUNNER_FLUSH_SECONDS ({heartbeat}) must be positive"),
        (
            3 * heartbeat <= lease,
            f"JOB_LEASE_SECONDS ({lease}) must be at least three times RUNNER_FLUSH_SECONDS ({heartbeat}): a runner "
            "gives up two heartbeats before its lease runs out, so one slow heartbeat must not lose it",
        ),
        (
            heartbeat + stop_grace <= CANCEL_SECONDS,
            f"RUNNER_FLUSH_SECONDS + RUNNER_STOP_GRACE_SECONDS ({heartbeat} + {stop_grace}) must not exceed "
            f"{CANCEL_SECONDS}: a cancelled job stops within that",
        ),
        (
            stop_grace < lease,
            f"RUNNER_STOP_GRACE_SECONDS ({stop_grace}) must be shorter than JOB_LEASE_SECONDS ({lease})",
        ),
        (
            reap <= lease,
            f"JOB_REAP_SECONDS ({reap}) must not exceed JOB_LEASE_SECONDS ({lease}), or lost jobs wait too long",
        ),
        (lease < time_limit, f"JOB_TIME_LIMIT_SECONDS ({time_limit}) must exceed JOB_LEASE_SECONDS ({lease})"),
        (
            time_limit <= time_limit_max,
            f"JOB_TIME_LIMIT_SECONDS ({time_limit}) must not exceed JOB_TIME_LIMIT_MAX_SECONDS ({time_limit_max})",
        ),
        (
            time_limit_max < visibility,
            f"CELERY_VISIBILITY_TIMEOUT ({visibility}) must exceed JOB_TIME_LIMIT_MAX_SECONDS ({time_limit_max}), "
            "or Redis redelivers the messages of jobs still running",
        ),
    ]
    return [message for ok, message in rules if not ok]


def check_timings(**timings: float) -> None:
    errors = timing_errors(**timings)
    if errors:
        raise ImproperlyConfigured("job runtime timings do not nest: " + "; ".join(errors))
