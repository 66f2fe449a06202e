"""The text-classification task: model and tokenizer loading, encoding, batching and evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F

from .metrics import classification_metrics, classification_report


def load_tokenizer(model_path: Path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_path), local_files_only=True)
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError("the tokenizer has no padding or end-of-text token, so batches cannot be padded")
        tokenizer.pad_token = tokenizer.eos_token  # GPT-style tokenizers have no pad token
    return tokenizer


def load_model(model_path: Path, labels: Sequence[str], pad_token_id: int):
    """(model, new_modules): new_modules names the modules whose weights were freshly initialised, because
    the checkpoint had none for them (the classifier head of a plain encoder, sometimes a pooler)."""
    from transformers import AutoModelForSequenceClassification

    model, info = AutoModelForSequenceClassification.from_pretrained(
        str(model_path),
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
        local_files_only=True,
        use_safetensors=True,
        dtype=torch.float32,  # train in full precision whatever dtype the checkpoint was stored in
        output_loading_info=True,
    )
    if model.config.pad_token_id is None:
        model.config.pad_token_id = pad_token_id  # needed to find the last real token of GPT-style models
    parameters = dict(model.named_parameters())
    new_modules = sorted({key.rsplit(".", 1)[0] for key in info["missing_keys"] if key in parameters})
    return model, new_modules


def max_positions(model, tokenizer) -> int | None:
    """The longest input the model accepts, so a large max_length does not index past its positions."""
    limits = [getattr(model.config, "max_position_embeddings", None), getattr(tokenizer, "model_max_length", None)]
    limits = [int(v) for v in limits if isinstance(v, int) and 0 < v < 1_000_000]
    return min(limits) if limits else None


def encode(tokenizer, texts: Sequence[str], max_length: int) -> list[dict[str, list[int]]]:
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length)
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in encoded]
    return [{k: encoded[k][i] for k in keys} for i in range(len(texts))]


def collate(features: Sequence[dict[str, list[int]]], pad_token_id: int, padding_side: str = "right") -> dict:
    """Pad one batch to its longest member (dynamic padding keeps short-text batches cheap)."""
    longest = max(len(f["input_ids"]) for f in features)
    batch: dict[str, list[list[int]]] = {key: [] for key in features[0]}
    for feature in features:
        gap = longest - len(feature["input_ids"])
        for key, values in feature.items():
            fill = [pad_token_id if key == "input_ids" else 0] * gap
            batch[key].append(fill + values if padding_side == "left" else values + fill)
    return {key: torch.tensor(values, dtype=torch.long) for key, values in batch.items()}


@torch.no_grad()
def predict_logits(model, features, *, batch_size: int, pad_token_id: int, padding_side: str, device) -> torch.Tensor:
    was_training = model.training
    model.eval()
    chunks = []
    with torch.no_grad():  # no graph: evaluation needs no gradients, and would hold every batch's activations
        for start in range(0, len(features), batch_size):
            batch = collate(features[start:start + batch_size], pad_token_id, padding_side)
            batch = {k: v.to(device) for k, v in batch.items()}
            chunks.append(model(**batch).logits.float().cpu())
    model.train(was_training)
    return torch.cat(chunks)


def evaluate(model, features, label_ids: Sequence[int], labels: Sequence[str], **predict_options) -> dict:
    """{"metrics": {eval_loss, accuracy, macro_f1}, "report": {confusion_matrix, per_class}}."""
    logits = predict_logits(model, features, **predict_options)
    targets = torch.tensor(list(label_ids), dtype=torch.long)
    predicted = logits.argmax(dim=-1).tolist()
    metrics = {"eval_loss": float(F.cross_entropy(logits, targets))}
    metrics.update(classification_metrics(targets.tolist(), predicted, len(labels)))
    return {"metrics": metrics, "report": classification_report(targets.tolist(), predicted, labels)}
