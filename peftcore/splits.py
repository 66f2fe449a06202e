"""Label ordering and the train/eval hold-out split (standard library only)."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from typing import TypeVar

from .defaults import eval_rows

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


def holdout_split(items: Sequence[T], fraction: float | None, key=None) -> tuple[list[T], list[T]]:
    """(train, eval) from already shuffled items: eval gets round(fraction * n) items (fraction None: the
    automatic share, defaults.eval_rows), at least one, and at least one item is left to train on. With key
    (an item's label) the hold-out is stratified."""
    if len(items) < 2:
        raise ValueError("at least 2 rows are needed to hold some out for evaluation")
    n_eval = eval_rows(len(items), fraction)
    if key is not None:
        return stratified_holdout(items, n_eval, key)
    return list(items[n_eval:]), list(items[:n_eval])


def stratified_holdout(items: Sequence[T], n_eval: int, key) -> tuple[list[T], list[T]]:
    """(train, eval) from already shuffled items with n_eval items held out, each label's share of them as
    close to its share of all items as whole rows allow (largest remainders), at least one left to train on
    per label where it has two or more; the order within each part stays the shuffled one."""
    if len(items) < 2:
        raise ValueError("at least 2 rows are needed to hold some out for evaluation")
    n_eval = min(max(1, n_eval), len(items) - 1)
    groups: dict = {}
    for index, item in enumerate(items):
        groups.setdefault(key(item), []).append(index)
    quotas = {label: len(indices) * n_eval / len(items) for label, indices in groups.items()}
    take = {label: min(int(q), max(len(groups[label]) - 1, 0)) for label, q in quotas.items()}
    by_remainder = sorted(groups, key=lambda label: (-(quotas[label] - int(quotas[label])), str(label)))
    while sum(take.values()) < n_eval:
        grown = False
        for label in by_remainder:
            if sum(take.values()) >= n_eval:
                break
            if take[label] < len(groups[label]) - (1 if len(groups[label]) > 1 else 0):
                take[label] += 1
                grown = True
        if not grown:
            break
    held = {index for label, indices in groups.items() for index in indices[: take[label]]}
    return [item for i, item in enumerate(items) if i not in held], [item for i, item in enumerate(items) if i in held]
