"""The text-classification task: reading rows, model and tokenizer loading, encoding, batching and evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F

from .data import DataError, Example, read_examples
from .errors import BAD_DATA, TrainingError
from .metrics import classification_metrics, classification_report
from .splits import holdout_split, shuffle_and_cut, sort_labels


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


def _read(path: str, fmt: str | None, job, role: str) -> list[Example]:
    try:
        return read_examples(path, fmt=fmt, text_column=job.text_column, label_column=job.label_column)
    except DataError as exc:
        raise TrainingError(BAD_DATA, f"{role} file {Path(path).name!r}: {exc}") from exc


def read_rows(job) -> tuple[list[Example], list[Example], list[str]]:
    """(train rows, eval rows, labels) of a train.Job, with every check that makes a bad file a bad_data error."""
    seed, max_rows = job.params["seed"], job.params["max_rows"]
    rows = shuffle_and_cut(_read(job.train_file, job.train_format, job, "training"), seed=seed, max_rows=max_rows)
    # Labels come from every training-file row in use, so a rare label held out for evaluation is still known.
    labels = sort_labels(example.label for example in rows)
    if len(labels) < 2:
        raise TrainingError(
            BAD_DATA,
            f"the label column {job.label_column!r} has only one value ({labels[0]!r}) in the training rows; "
            "classification needs at least two different labels",
        )
    if job.eval_file:
        train_rows, eval_rows = rows, _read(job.eval_file, job.eval_format, job, "evaluation")
        known = set(labels)
        for example in eval_rows:
            if example.label not in known:
                raise TrainingError(
                    BAD_DATA,
                    f"evaluation file {Path(job.eval_file).name!r}: row {example.row}: the label "
                    f"{example.label!r} does not occur in the training data (labels: {', '.join(labels)})",
                )
    else:
        train_rows, eval_rows = holdout_split(rows, job.params["eval_fraction"])
    return train_rows, eval_rows, labels


class ClassificationTask:
    """Classification's side of a training run (train.fit drives it, as it drives the generation tasks)."""

    def __init__(self, labels: Sequence[str]):
        self.labels = list(labels)
        self.index = {label: i for i, label in enumerate(self.labels)}
        self.tokenizer = None
        self.max_length = 128
        self.batch_size = 16
        self.device = torch.device("cpu")
        self.position_limit: int | None = None

    def encode(self, rows: Sequence[Example]) -> list[dict]:
        features = encode(self.tokenizer, [e.text for e in rows], self.max_length)
        return [dict(f, target=self.index[e.label]) for f, e in zip(features, rows)]

    def collate(self, features: Sequence[dict]) -> dict:
        batch = collate([{k: v for k, v in f.items() if k != "target"} for f in features],
                        self.tokenizer.pad_token_id, self.tokenizer.padding_side)
        batch["labels"] = torch.tensor([f["target"] for f in features], dtype=torch.long)
        return batch

    @staticmethod
    def loss(model, batch: dict) -> torch.Tensor:
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        return F.cross_entropy(model(**inputs).logits.float(), batch["labels"])

    def evaluate(self, model, features: Sequence[dict], rows, *, final: bool) -> dict:
        plain = [{k: v for k, v in f.items() if k != "target"} for f in features]
        return evaluate(model, plain, [f["target"] for f in features], self.labels, batch_size=self.batch_size,
                        pad_token_id=self.tokenizer.pad_token_id, padding_side=self.tokenizer.padding_side,
                        device=self.device)
