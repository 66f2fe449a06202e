"""How much work a training run is, in tokens, before it runs: the job form's time estimate divides it by a
measured tokens-per-second rate (jobs/estimates.py), and bench/estimate_error.py checks it against real runs."""

import math

EVAL_COST = 1 / 3  # an evaluated token costs about a third of a trained one (no backward pass)
MEAN_LENGTH_SHARE = 0.6  # without counted token lengths: rows are taken to fill 60% of the max length


def tokens_per_row(max_length: int, histogram: dict | None) -> float:
    """A row's mean tokens after truncation to max_length, from the counted lengths ({length: rows}, as a worker's
    TokenStats holds them); a share of the max length when they are not counted yet."""
    if histogram:
        rows = sum(int(n) for n in histogram.values())
        if rows:
            return sum(min(int(length), max_length) * int(n) for length, n in histogram.items()) / rows
    return max_length * MEAN_LENGTH_SHARE


def train_steps(train_rows: int, batch_size: int, epochs: int) -> int:
    """The optimizer steps of every epoch (early stopping may end sooner)."""
    return math.ceil(train_rows / batch_size) * epochs


def work_tokens(*, steps: int, batch_size: int, row_tokens: float, epochs: int, eval_rows: int) -> float:
    """Tokens trained on, plus the evaluations after each epoch at their lower cost."""
    return steps * batch_size * row_tokens + epochs * eval_rows * row_tokens * EVAL_COST


def run_rate(
    *, train_seconds: float, train_tokens: int, steps: int, batch_size: int, eval_rows: int, steps_per_epoch: int
) -> float | None:
    """A finished run's rate in the units of work_tokens: its work (its own mean row length, the epochs it ran and
    their evaluations) over its whole training time, evaluations and checkpoints included."""
    if not (train_seconds and train_tokens and steps and batch_size):
        return None
    row_tokens = train_tokens / (steps * batch_size)
    epochs = math.ceil(steps / max(steps_per_epoch, 1))
    work = work_tokens(steps=steps, batch_size=batch_size, row_tokens=row_tokens, epochs=epochs, eval_rows=eval_rows)
    return work / train_seconds
