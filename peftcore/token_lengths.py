"""Token lengths of a text column under a model's tokenizer: counted once as a histogram, then summarised for any
max length (percentiles, and how many rows that max length would cut). summarise() is pure Python, so the web
process can use it; length_histogram() loads the tokenizer and belongs in a worker."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator

from .formats import RowReader, cell_text

BATCH = 512  # texts per tokenizer call: fast tokenizers parallelise within a batch
TRUNCATION_WARNING_SHARE = 0.05  # above this share of rows cut, the pre-flight report warns


def column_texts(path: str | Path, fmt: str | None, column: str) -> Iterator[str]:
    """Every non-empty cell of `column` (rows the upload check would reject are skipped, not raised)."""
    for _row, record, error in RowReader(path, fmt):
        if error is not None:
            continue
        try:
            text = cell_text(record.get(column))
        except ValueError:
            continue
        if text and text.strip():
            yield text


def length_histogram(model_path: Path, texts: Iterable[str]) -> dict[int, int]:
    """{token count: rows}, special tokens included, nothing truncated."""
    from .classification import load_tokenizer

    tokenizer = load_tokenizer(model_path)
    counts: Counter = Counter()
    batch: list[str] = []

    def flush() -> None:
        if batch:
            encoded = tokenizer(batch, truncation=False, verbose=False)["input_ids"]
            counts.update(len(ids) for ids in encoded)
            batch.clear()

    for text in texts:
        batch.append(text)
        if len(batch) >= BATCH:
            flush()
    flush()
    return dict(counts)


def model_token_limit(model_path: Path) -> int | None:
    """The longest input a model's positions allow, from its config.json (None when it does not say)."""
    import json

    try:
        config = json.loads((Path(model_path) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for key in ("max_position_embeddings", "n_positions"):
        if isinstance(config.get(key), int) and config[key] > 0:
            return config[key]
    return None


def _percentile(ordered: list[tuple[int, int]], rows: int, q: float) -> int:
    """The smallest length at or below which at least q of the rows lie (nearest-rank)."""
    rank, seen = max(1, math.ceil(round(q * rows, 9))), 0  # round: 0.95 * 20 is 19.000000000000004
    for length, count in ordered:
        seen += count
        if seen >= rank:
            return length
    return ordered[-1][0]


def summarise(histogram: dict, max_length: int | None = None) -> dict:
    """{rows, p50, p95, max[, max_length, truncated_rows, truncated_share]} from a histogram whose keys may be
    JSON strings."""
    ordered = sorted((int(length), int(count)) for length, count in histogram.items() if int(count) > 0)
    rows = sum(count for _, count in ordered)
    if not rows:
        return {"rows": 0, "p50": None, "p95": None, "max": None}
    out = {"rows": rows, "p50": _percentile(ordered, rows, 0.5), "p95": _percentile(ordered, rows, 0.95),
           "max": ordered[-1][0]}
    if max_length is not None:
        cut = sum(count for length, count in ordered if length > max_length)
        out.update(max_length=max_length, truncated_rows=cut, truncated_share=cut / rows)
    return out


def truncation_warning(summary: dict, model_limit: int | None = None) -> str | None:
    """A warning when more than a few rows are cut; the advice never exceeds what the model can read."""
    share = summary.get("truncated_share")
    if share is None or share <= TRUNCATION_WARNING_SHARE:
        return None
    message = (f"{summary['truncated_rows']:,} rows ({share:.0%}) are longer than the maximum length of "
               f"{summary['max_length']} tokens and will be cut")
    if model_limit is not None and summary["p95"] > model_limit:
        return message + f"; the model reads at most {model_limit} tokens, so shorten the texts if their ends matter"
    return message + f"; raise the maximum length to {summary['p95']} (95% of rows fit) if their ends matter"
