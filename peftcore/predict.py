"""Predictions from a finished adapter folder: the playground's engine (run by a worker, never the web process).

Any adapter the studio writes loads the same way (peft, peftcore's own methods, full fine-tuning, stacked), so
the playground tries exactly what a user downloads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .adapters import load_adapter
from .artifacts import read_labels

MAX_TEXTS = 32  # texts per request: the playground is for trying, not batch inference
MAX_LENGTH = 512


@dataclass
class Classifier:
    model: object
    tokenizer: object
    labels: list[str]


def load_classifier(model_path: Path, adapter_dir: Path) -> Classifier:
    import torch

    from .classification import load_model, load_tokenizer

    adapter_dir = Path(adapter_dir)
    labels = read_labels(adapter_dir)
    tokenizer = load_tokenizer(adapter_dir)  # saved with the adapter: the exact tokenizer it was trained with
    model, _ = load_model(Path(model_path), labels, tokenizer.pad_token_id)
    model = load_adapter(model, adapter_dir)  # full fine-tuning's folder replaces every weight
    model.eval()
    if torch.cuda.is_available():
        model.to("cuda")
    return Classifier(model, tokenizer, labels)


def classify(classifier: Classifier, texts: Sequence[str], max_length: int = 128) -> list[dict]:
    """Per text: {"label": the most probable, "probabilities": {label: p}} in the order of the labels."""
    import torch

    from .classification import collate, encode

    if not texts:
        return []
    if len(texts) > MAX_TEXTS:
        raise ValueError(f"at most {MAX_TEXTS} texts at a time")
    max_length = max(1, min(int(max_length), MAX_LENGTH))
    tokenizer = classifier.tokenizer
    batch = collate(encode(tokenizer, list(texts), max_length), tokenizer.pad_token_id, tokenizer.padding_side)
    device = next(classifier.model.parameters()).device
    with torch.no_grad():
        logits = classifier.model(**{k: v.to(device) for k, v in batch.items()}).logits
    out = []
    for row in torch.softmax(logits.float(), dim=-1).cpu().tolist():
        best = max(range(len(row)), key=row.__getitem__)
        out.append({"label": classifier.labels[best],
                    "probabilities": {label: round(p, 6) for label, p in zip(classifier.labels, row)}})
    return out
