"""Token lengths of a text column under a model's tokenizer: counted once as a histogram, then summarised for any
max length (percentiles, and how many rows that max length would cut). summarise() is pure Python, so the web
process can use it; length_histogram() loads the tokenizer and belongs in a worker."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

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
    from .tasks import load_tokenizer

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
    out = {
        "rows": rows,
        "p50": _percentile(ordered, rows, 0.5),
        "p95": _percentile(ordered, rows, 0.95),
        "max": ordered[-1][0],
    }
    if max_length is not None:
        cut = sum(count for length, count in ordered if length > max_length)
        out.update(max_length=max_length, truncated_rows=cut, truncated_share=cut / rows)
    return out


def truncation_warning(summary: dict, model_limit: int | None = None) -> str | None:
    """A warning when more than a few rows are cut; the advice never exceeds what the model can read."""
    share = summary.get("truncated_share")
    if share is None or share <= TRUNCATION_WARNING_SHARE:
        return None
    message = (
        f"{summary['truncated_rows']:,} rows ({share:.0%}) are longer than the maximum length of "
        f"{summary['max_length']} tokens and will be cut"
    )
    if model_limit is not None and summary["p95"] > model_limit:
        return message + f"; the model reads at most {model_limit} tokens, so shorten the texts if their ends matter"
    return message + f"; raise the maximum length to {summary['p95']} (95% of rows fit) if their ends matter"


# --- SFT: prompt and answer lengths under the prompt template, rows that cannot be read ----------------------

LONGEST_KEPT = 100  # rows with the longest prompts, by number, so any max length can name the rows it empties
REJECTED_KEPT = 20
EXAMPLE_ROWS = 5  # row numbers quoted when a max length empties answers
UNCUT = 1 << 30  # a max length no example reaches: encode() then cuts nothing


def sft_lengths(model_path: Path, path: str | Path, fmt: str | None, options: dict) -> dict:
    """For SFT data (options: prompt, response, input, messages, template as a job names them): histograms of
    whole-example and prompt lengths in tokens, the rows with the longest prompts, and the rows that cannot be
    read with why. Loads the tokenizer: a worker's job."""
    import heapq

    from .formats import DataError
    from .sft import AUTO, encode, example_from_record
    from .tasks import load_tokenizer

    tokenizer = load_tokenizer(model_path)
    template = options.get("template") or AUTO
    columns = dict(
        prompt_column=options.get("prompt"),
        response_column=options.get("response"),
        input_column=options.get("input"),
        messages_column=options.get("messages"),
    )
    totals: Counter = Counter()
    prompts: Counter = Counter()
    longest: list[tuple[int, int]] = []
    rejected: list[dict] = []
    rejected_count = 0
    for row, record, error in RowReader(path, fmt):
        try:
            if error is not None:
                raise error
            example = example_from_record(record, row, **columns)
        except DataError as exc:
            rejected_count += 1
            if len(rejected) < REJECTED_KEPT:
                rejected.append({"row": row, "message": exc.message})
            continue
        encoded = encode(example, tokenizer, UNCUT, template)
        total = len(encoded["input_ids"])
        prompt = total - encoded["response_tokens"]
        totals[total] += 1
        prompts[prompt] += 1
        heapq.heappush(longest, (prompt, -row))
        if len(longest) > LONGEST_KEPT:
            heapq.heappop(longest)
    return {
        "histogram": {str(k): v for k, v in sorted(totals.items())},
        "prompt_histogram": {str(k): v for k, v in sorted(prompts.items())},
        "longest_prompts": [[-row, length] for length, row in sorted(longest, reverse=True)],
        "rejected": rejected,
        "rejected_count": rejected_count,
    }


def sft_check(result: dict, max_length: int) -> dict:
    """What a max length does to SFT data counted by sft_lengths: {rejected_count, rejected, masked_count,
    masked_rows (first few), needed_length (the max length that keeps every answer)}."""
    prompts = {int(k): int(v) for k, v in (result.get("prompt_histogram") or {}).items()}
    masked_count = sum(count for length, count in prompts.items() if length >= max_length)
    masked_rows = sorted(row for row, length in result.get("longest_prompts", []) if length >= max_length)
    return {
        "rejected_count": result.get("rejected_count", 0),
        "rejected": result.get("rejected", []),
        "masked_count": masked_count,
        "masked_rows": masked_rows[:EXAMPLE_ROWS],
        "needed_length": max(prompts) + 1 if prompts else None,
    }
