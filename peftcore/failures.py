"""Failure classification: every exception a run raises becomes a TrainingError of one kind (errors.py) with a
message a user can act on, and run() reports it as one error event."""

from __future__ import annotations

import contextlib

from .errors import BAD_DATA, INTERNAL, OUT_OF_MEMORY, TrainingError, is_out_of_memory
from .formats import DataError


@contextlib.contextmanager
def failures_as(kind: str, what: str):
    """Report unexpected exceptions of one phase as `kind` (e.g. anything while loading -> model_load)."""
    try:
        yield
    except TrainingError:
        raise
    except Exception as exc:
        if is_out_of_memory(exc):
            raise
        raise TrainingError(kind, f"{what}: {exc}") from exc


def classify_failure(exc: BaseException, micro_batch_size: int | None = None) -> TrainingError:
    if isinstance(exc, TrainingError):
        return exc
    if isinstance(exc, DataError):
        return TrainingError(BAD_DATA, str(exc))
    if is_out_of_memory(exc):
        rows = f" with micro-batches of {micro_batch_size} rows" if micro_batch_size else ""
        return TrainingError(
            OUT_OF_MEMORY,
            f"training ran out of memory{rows}; try a smaller micro-batch size, or a smaller batch size or max length",
        )
    return TrainingError(INTERNAL, f"{type(exc).__name__}: {exc}")


def error_event(error: TrainingError, micro_batch_size: int | None = None) -> dict:
    """The error event; an out-of-memory one names the micro-batch size that failed."""
    event = {"event": "error", "kind": error.kind, "message": error.message}
    if error.kind == OUT_OF_MEMORY:
        event["micro_batch_size"] = micro_batch_size
    return event
