"""How much work a training run is, in tokens, before it runs: the job form's time estimate divides it by a
measured tokens-per-second rate (jobs/estimates.py), and bench/estimate_error.py checks it against real runs."""

import math

EVAL_COST = 1 / 3  # an evaluated token costs about a third of a trained one (no backward pass)
MEAN_LENGTH_SHARE = 0.6  # without counted token lengths: rows are taken to fill 60% of the max length


def tokens_per_row(max_length: int, median_tokens: float | None) -> float:
    """A row's tokens after truncation: its median length when counted, else a share of the max length."""
    return min(median_tokens, max_length) if median_tokens else max_length * MEAN_LENGTH_SHARE


def train_steps(train_rows: int, batch_size: int, epochs: int) -> int:
    """The optimizer steps of every epoch (early stopping may end sooner)."""
    return math.ceil(train_rows / batch_size) * epochs


def work_tokens(*, steps: int, batch_size: int, row_tokens: float, epochs: int, eval_rows: int) -> float:
    """Tokens trained on, plus the evaluations after each epoch at their lower cost."""
    return steps * batch_size * row_tokens + epochs * eval_rows * row_tokens * EVAL_COST
