"""Defaults that adapt to the data and the model: every setting a user leaves empty is chosen here, with the
reason, so a no-code user's first job is a good one and the form and report can say "chosen because ...".

Pure standard library: the web process resolves what it can when a job is created (rows and labels are known
from the upload, token lengths once a worker has counted them) and stores the choices; training resolves what is
left with the same rules (max length from the training rows' own token lengths). The rules are general on
purpose (sizes, shares, percentiles), never fitted to one dataset: docs/benchmarks.md has the evidence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

# A step budget rather than a fixed epoch count: small data gets more passes, large data fewer. Early stopping
# on the held-out split (loop.py) ends a run once it stops improving, so a generous budget costs time, not
# accuracy.
TARGET_STEPS = 300
MAX_EPOCHS = 30
GENERATIVE_MAX_EPOCHS = 3  # more passes over instruction data memorise answers
SMALL_DATA_ROWS = 1_000  # below this, batches of 16 (more steps from little data); above, 32
HEAD_LEARNING_RATE = 1e-2  # a new classifier head starts from random weights and wants a rate of its own
LENGTH_CAP = {False: 256, True: 512}  # by Task.generative: a longer cap costs time on every step
MIN_LENGTH = 16
# The hold-out when no evaluation file is given: 10% of the rows, but never fewer than MIN_EVAL_SHARE of them
# (up to MIN_EVAL_ROWS rows) so that small data still gives a figure worth reading.
EVAL_SHARE = 0.1
MIN_EVAL_ROWS = 200
MIN_EVAL_SHARE = 0.25
PATIENCE = 3
# The untrained model is measured on at most this many evaluation rows, spread over the whole set: enough to tell
# whether training gained anything, without a full evaluation before the first step (22 s of a 34 s overhead on
# SST-2's 872 dev rows).
BASELINE_ROWS = 256


@dataclass(frozen=True)
class Facts:
    """What the choices depend on. train_rows: the rows training will read (after the row limit and the
    hold-out); token_p95: the 95th percentile of the texts' token lengths (None: not counted yet)."""

    generative: bool
    has_labels: bool
    train_rows: int | None = None
    num_labels: int | None = None
    token_p95: int | None = None
    position_limit: int | None = None
    keep_answers: int | None = None  # SFT: the length that leaves every row some answer (longest prompt + 1)


@dataclass
class Choices:
    params: dict
    method_params: dict
    reasons: dict[str, str] = field(default_factory=dict)  # "params.epochs" -> why that value


def eval_rows(rows: int, fraction: float | None) -> int:
    """How many of `rows` shuffled rows the hold-out takes: `fraction` of them when the user set one, else the
    automatic share; at least one, and at least one left to train on."""
    if fraction is None:
        wanted = max(round(rows * EVAL_SHARE), min(MIN_EVAL_ROWS, round(rows * MIN_EVAL_SHARE)))
    else:
        wanted = round(rows * fraction)
    return min(max(1, wanted), max(rows - 1, 1))


def eval_reason(rows: int) -> str:
    held = eval_rows(rows, None)
    if held > round(rows * EVAL_SHARE):
        return (
            f"{held:,} of {rows:,} rows held out (more than the usual 10%) so the accuracy is measured on enough "
            "rows to mean something; stratified by label"
        )
    return f"10% of {rows:,} rows held out to measure the model, stratified by label"


def measured_rate(method, method_params: dict) -> tuple[float, str]:
    """The learning rate measured best for the method with these settings (LoRA's CorDA starts want a tenth of
    LoRA's), and why."""
    special = method.learning_rate_for(method_params) if getattr(method, "learning_rate_for", None) else None
    return special or (method.recommended_learning_rate, f"the rate measured best for {method.label}")


def resolve(facts: Facts, method, params: dict, method_params: dict) -> Choices:
    """Fill every None in the training params (and the method's own automatic params) that the facts allow;
    leave the rest None for training to resolve. Values the user set are never touched."""
    params, method_params = dict(params), dict(method_params)
    reasons: dict[str, str] = {}

    def choose(key: str, value, reason: str) -> None:
        params[key] = value
        reasons[f"params.{key}"] = reason

    if params.get("learning_rate") is None:
        choose("learning_rate", *measured_rate(method, method_params))
    if facts.has_labels and params.get("head_learning_rate") is None:
        rate = max(HEAD_LEARNING_RATE, params["learning_rate"])
        choose(
            "head_learning_rate",
            rate,
            "the classifier head starts from random weights, so it learns at its own, higher rate",
        )
    rows = facts.train_rows
    if params.get("batch_size") is None and rows is not None:
        if rows < SMALL_DATA_ROWS:
            choose("batch_size", 16, f"{rows:,} training rows: small batches give more learning steps")
        else:
            choose("batch_size", 32, f"{rows:,} training rows: batches of 32 give steadier steps")
    if params.get("epochs") is None and rows is not None and params.get("batch_size"):
        steps_per_epoch = math.ceil(rows / params["batch_size"])
        most = GENERATIVE_MAX_EPOCHS if facts.generative else MAX_EPOCHS
        epochs = max(1, min(most, math.ceil(TARGET_STEPS / steps_per_epoch)))
        choose(
            "epochs",
            epochs,
            f"a budget of about {TARGET_STEPS} steps: {epochs} pass{'es' if epochs != 1 else ''} over "
            f"{rows:,} rows at {steps_per_epoch} steps each (at most {most}); training stops early when the "
            "held-out score stops improving",
        )
    if params.get("max_length") is None and facts.token_p95 is not None:
        length, reason = auto_max_length(facts.token_p95, facts.generative, facts.position_limit, facts.keep_answers)
        choose("max_length", length, reason)
    auto = getattr(method, "auto", None)
    if auto is not None:
        for key, (value, reason) in auto(method_params).items():
            method_params[key] = value
            reasons[f"method_params.{key}"] = reason
    return Choices(params, method_params, reasons)


def auto_max_length(
    p95: int, generative: bool, position_limit: int | None = None, keep_answers: int | None = None
) -> tuple[int, str]:
    """(max length, why): room for 95% of the texts, rounded up to a multiple of 8, at least MIN_LENGTH, capped;
    for SFT also room for every prompt plus a token of its answer (a row whose prompt fills the length has
    nothing left to learn), as far as the model's positions allow."""
    cap = LENGTH_CAP[generative]
    if position_limit:
        cap = min(cap, position_limit)
    length = max(MIN_LENGTH, min(cap, _round_up(p95, 8)))
    reason = f"95% of the texts are {p95} tokens or shorter (capped at {cap})"
    if keep_answers and keep_answers > length:
        length = min(_round_up(keep_answers, 8), position_limit or _round_up(keep_answers, 8))
        reason += f"; raised to {length} so that every row keeps part of its answer (the longest prompt)"
    return length, reason


def _round_up(value: int, step: int) -> int:
    return int(math.ceil(value / step) * step)
