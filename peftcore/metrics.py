"""Classification metrics as plain dicts (JSON-ready); scikit-learn is imported only when computing."""

from __future__ import annotations

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


def generation_metrics(generations: Sequence[str], references: Sequence[str]) -> tuple[dict, list[float]]:
    """({rouge_l, bleu, exact_match}, each generation's ROUGE-L): ROUGE-L F1 (rouge-score, stemmed) and exact
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
    return ({"rouge_l": sum(rouge) / len(rouge), "bleu": float(bleu), "exact_match": sum(exact) / len(exact)}, rouge)
