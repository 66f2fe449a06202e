"""How much a finished run's figures can be trusted, and whether it learned anything: a confidence interval for
every accuracy-like share, and plain warnings when the model is no better than always answering the most
common label or than the untrained model, with the likely cause and what to change."""

from __future__ import annotations

import math

SHARES = ("accuracy", "exact_match", "answer_match")  # metrics that are a share of rows right: each gets an interval
CONFIDENCE = 0.95


def interval(share: float, rows: int) -> list[float] | None:
    """The Wilson score interval (95%) of a share measured on `rows` rows, as [low, high]."""
    if not rows or share is None or not math.isfinite(share):
        return None
    from scipy.stats import binomtest

    hits = round(share * rows)
    low, high = binomtest(hits, rows).proportion_ci(confidence_level=CONFIDENCE, method="wilson")
    return [round(float(low), 4), round(float(high), 4)]


def intervals(metrics: dict, rows: int, generated_rows: int | None = None) -> dict[str, list[float]]:
    """accuracy over every evaluation row; exact match over the rows generated for (generated_rows)."""
    counted = {"accuracy": rows, "exact_match": generated_rows, "answer_match": generated_rows}
    found = {
        name: interval(metrics[name], counted[name])
        for name in SHARES
        if isinstance(metrics.get(name), (int, float)) and counted[name]
    }
    return {name: value for name, value in found.items() if value is not None}


def warnings(report: dict) -> list[dict]:
    """[{"kind", "message", "fix"}] for a classification report whose model learned nothing worth having."""
    matrix, metrics = report.get("confusion_matrix"), report.get("metrics") or {}
    accuracy = metrics.get("accuracy")
    if not matrix or accuracy is None:
        return []
    labels = report.get("labels") or [str(i) for i in range(len(matrix))]
    rows = sum(sum(row) for row in matrix)
    truth = [sum(row) for row in matrix]
    predicted = [sum(row[j] for row in matrix) for j in range(len(matrix))]
    majority = max(range(len(truth)), key=truth.__getitem__)
    majority_share = truth[majority] / rows if rows else 0.0
    low = (report.get("intervals") or {}).get("accuracy", [accuracy])[0]
    fix = (
        "give it more rows (a few hundred per label), more epochs or the method's default learning rate; "
        "LoRA is the safest method on little data"
    )
    found = []
    used = [j for j, count in enumerate(predicted) if count]
    if len(used) == 1 and len(truth) > 1:
        found.append(
            {
                "kind": "one_class",
                "message": f"The model predicts '{labels[used[0]]}' for every one of the {rows:,} evaluation rows: "
                "it has learned nothing about the texts.",
                "fix": fix,
            }
        )
    elif low <= majority_share:
        found.append(
            {
                "kind": "majority",
                "message": f"{accuracy:.1%} accuracy is no better than always answering the most common label "
                f"'{labels[majority]}' ({majority_share:.1%} of the evaluation rows), given the uncertainty of "
                f"{rows:,} rows.",
                "fix": fix,
            }
        )
    baseline = (report.get("baseline_metrics") or {}).get("accuracy")
    if baseline is not None and accuracy <= baseline and not found:
        found.append(
            {
                "kind": "no_gain",
                "message": f"Training did not improve on the untrained model ({baseline:.1%} before, "
                f"{accuracy:.1%} after).",
                "fix": "try a lower learning rate, or check that the label column holds what the texts say",
            }
        )
    return found
