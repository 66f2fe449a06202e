"""Label ordering and the train/eval hold-out split (standard library only)."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from typing import TypeVar

T = TypeVar("T")


def sort_labels(labels: Iterable[str]) -> list[str]:
    """Distinct labels in a stable order: numerically when all are integers ("2" before "10"), else by text."""
    distinct = set(labels)
    try:
        return sorted(distinct, key=lambda label: (int(label), label))
    except ValueError:
        return sorted(distinct)


def shuffle_and_cut(items: Sequence[T], *, seed: int, max_rows: int | None = None) -> list[T]:
    """A seeded shuffle, then the first max_rows: a row limit keeps a random sample, not the file's head
    (files are often sorted by label)."""
    shuffled = list(items)
    random.Random(seed).shuffle(shuffled)
    return shuffled[:max_rows] if max_rows is not None else shuffled


def holdout_split(items: Sequence[T], fraction: float) -> tuple[list[T], list[T]]:
    """(train, eval) from already shuffled items: eval gets round(fraction * n) items, at least one, and at
    least one item is left to train on."""
    if len(items) < 2:
        raise ValueError("at least 2 rows are needed to hold some out for evaluation")
    n_eval = min(max(1, round(len(items) * fraction)), len(items) - 1)
    return list(items[n_eval:]), list(items[:n_eval])
