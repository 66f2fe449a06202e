"""How a failed training run is classified, so the web app can tell the user what to do next; and how a run is
asked to stop (preemption), which is not a failure."""

from __future__ import annotations

from contextlib import contextmanager

BAD_DATA = "bad_data"
OUT_OF_MEMORY = "out_of_memory"
MODEL_LOAD = "model_load"
BAD_PARAMS = "bad_params"
INTERNAL = "internal"
ERROR_KINDS = (BAD_DATA, OUT_OF_MEMORY, MODEL_LOAD, BAD_PARAMS, INTERNAL)

# The CLI's exit status: 2 means "the job's inputs are wrong", so retrying the same job cannot help.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


class TrainingError(Exception):
    def __init__(self, kind: str, message: str):
        if kind not in ERROR_KINDS:
            raise ValueError(f"unknown error kind {kind!r}")
        super().__init__(message)
        self.kind = kind
        self.message = message

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"

    @property
    def exit_code(self) -> int:
        return EXIT_BAD_INPUT if self.kind in (BAD_DATA, BAD_PARAMS) else EXIT_FAILED


def is_out_of_memory(exc: BaseException) -> bool:
    """torch.OutOfMemoryError, or the RuntimeError older code paths and other backends raise."""
    if type(exc).__name__ in ("OutOfMemoryError", "CUDAOutOfMemoryError"):
        return True
    return isinstance(exc, (RuntimeError, MemoryError)) and (
        isinstance(exc, MemoryError) or "out of memory" in str(exc).lower()
    )


class Preempted(BaseException):
    """Training was asked to stop before it had anything worth saving. A BaseException, like KeyboardInterrupt,
    so that no `except Exception` on the way (e.g. the one that reports load failures as model_load) takes it
    for a failure."""


class StopSignal:
    """A request to stop training, set from a signal handler (the CLI sets it on SIGTERM) and read by train.fit()
    as its should_stop. Inside an interruptible() block (fit() wraps the phases before its first optimizer step:
    loading, encoding, the baseline evaluation, where nothing is worth a checkpoint yet) request() raises
    Preempted at once, so the process stops promptly; elsewhere it only sets the flag, and fit() finishes the
    current optimizer step, writes a checkpoint and stops."""

    def __init__(self) -> None:
        self.requested = False
        self._interruptible = False

    def __call__(self) -> bool:
        return self.requested

    def request(self) -> None:
        self.requested = True
        if self._interruptible:
            self._interruptible = False  # raise once
            raise Preempted()

    @contextmanager
    def interruptible(self):
        self._set(True)
        try:
            yield
        finally:
            self._interruptible = False

    @contextmanager
    def deferred(self):
        """Hold an interruption back until the block ends (an event line must never be cut short)."""
        was = self._interruptible
        self._interruptible = False
        try:
            yield
        finally:
            self._set(was)

    def _set(self, interruptible: bool) -> None:
        self._interruptible = interruptible
        if interruptible and self.requested:
            self._interruptible = False
            raise Preempted()
