"""Classification metrics as plain dicts (JSON-ready); scikit-learn is imported only when computing."""

from __future__ import annotations

import re
from collections.abc import Sequence


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], num_labels: int) -> dict:
    from sklearn.metrics import accuracy_score, f1_score

    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        # Every label counts in the macro average, even one the model never predicts (its F1 is 0).
        "macro_f1": float(f1_score(y_true, y_pred, labels=list(range(num_labels)), average="macro", zero_division=0)),
    }


def classification_report(y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[str]) -> dict:
    """confusion_matrix (rows = true label, columns = predicted, in label order) and per-class figures."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    ids = list(range(len(labels)))
    matrix = confusion_matrix(y_true, y_pred, labels=ids)
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=ids, zero_division=0)
    return {
        "confusion_matrix": [[int(v) for v in row] for row in matrix],
        "per_class": {
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(labels)
        },
    }


def _normalise(text: str) -> str:
    return " ".join(text.split()).casefold()


# Final-answer markers that reasoning datasets put after the worked solution (GSM8K's "#### 72", "The answer is
# 72", LaTeX's \boxed{72}). When nearly every reference has one, the answer after it is scored on its own: a
# generation may reason differently and still reach the right answer.
ANSWER_PATTERNS = (r"####\s*(.+?)\s*$", r"[Tt]he (?:final )?answer is:?\s*(.+?)\.?\s*$", r"\\boxed\{([^{}]*)\}")
ANSWER_SHARE = 0.9  # of the references that must carry a pattern for it to be the dataset's


def answer_pattern(references: Sequence[str]) -> str | None:
    """The final-answer pattern (a regex whose group 1 is the answer) that at least ANSWER_SHARE of the references
    carry; None when none does."""
    for pattern in ANSWER_PATTERNS:
        found = sum(1 for ref in references if re.search(pattern, ref, re.M))
        if references and found >= ANSWER_SHARE * len(references):
            return pattern
    return None


def final_answer(text: str, pattern: str) -> str | None:
    """The last answer the pattern finds, without thousands separators, currency or a trailing full stop."""
    found = re.findall(pattern, text, re.M)
    if not found:
        return None
    return _normalise(found[-1].replace(",", "").replace("$", "").rstrip("."))


def answer_metrics(generations: Sequence[str], references: Sequence[str]) -> dict:
    """{answer_pattern, answer_format (generations that state an answer as the references do), answer_match
    (whose answer equals the reference's)}; {} when the references carry no final-answer pattern."""
    pattern = answer_pattern(references)
    if pattern is None:
        return {}
    stated = [final_answer(gen, pattern) for gen in generations]
    expected = [final_answer(ref, pattern) for ref in references]
    return {
        "answer_pattern": pattern,
        "answer_format": sum(a is not None for a in stated) / len(stated),
        "answer_match": sum(a is not None and a == e for a, e in zip(stated, expected)) / len(stated),
    }


def generation_metrics(generations: Sequence[str], references: Sequence[str]) -> tuple[dict, list[float]]:
    """({rouge_l, bleu, exact_match[, answer_*]}, each generation's ROUGE-L): ROUGE-L F1 (rouge-score, stemmed) and exact
    match (ignoring case and spacing) as shares of 1, corpus BLEU (sacrebleu) on its usual 0-100 scale."""
    import sacrebleu
    from rouge_score import rouge_scorer

    if len(generations) != len(references) or not references:
        raise ValueError("one generation per reference, and at least one of them")
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    rouge = [scorer.score(ref, gen)["rougeL"].fmeasure for gen, ref in zip(generations, references)]
    exact = [_normalise(gen) == _normalise(ref) for gen, ref in zip(generations, references)]
    # effective order: n-gram orders no answer is long enough to have are skipped, so short answers (a label, a
    # number) that match score 100, not 0
    bleu = sacrebleu.BLEU(effective_order=True).corpus_score(list(generations), [list(references)]).score
    scores = {"rouge_l": sum(rouge) / len(rouge), "bleu": float(bleu), "exact_match": sum(exact) / len(exact)}
    return scores | answer_metrics(generations, references), rouge
