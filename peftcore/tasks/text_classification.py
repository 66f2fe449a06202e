"""Text classification: predict one label of a fixed set (read from the training data) for each text, with a
new classifier head on the base model."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..data import Example, read_examples
from ..errors import BAD_DATA, TrainingError
from ..metrics import classification_metrics, classification_report
from ..pooling import MEAN, MODEL, apply_pooling, checkpoint_pooling
from ..splits import holdout_split, shuffle_and_cut, sort_labels
from . import register
from ._base import PLAYGROUND_MAX_LENGTH, Predictor, Rows, Runner, Task, check_texts, new_modules, pad, read_file


class ClassificationRunner(Runner):
    def __init__(self, task: Task, **settings):
        super().__init__(task, **settings)
        self.index = {label: i for i, label in enumerate(self.labels)}

    def encode(self, rows: Sequence[Example]) -> list[dict]:
        features = encode(self.tokenizer, [e.text for e in rows], self.max_length)
        return [dict(f, target=self.index[e.label]) for f, e in zip(features, rows)]

    def collate(self, features: Sequence[dict]) -> dict:
        import torch

        batch = collate([_inputs(f) for f in features], self.tokenizer.pad_token_id, self.tokenizer.padding_side)
        batch["labels"] = torch.tensor([f["target"] for f in features], dtype=torch.long)
        return batch

    def loss_units(self, batch: dict) -> int:
        return len(batch["labels"])

    def summed_loss(self, model, batch: dict):
        import torch.nn.functional as F

        logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
        return F.cross_entropy(logits.float(), batch["labels"], reduction="sum")

    def evaluate(self, model, features: Sequence[dict], rows, *, final: bool) -> dict:
        return evaluate(
            model,
            [_inputs(f) for f in features],
            [f["target"] for f in features],
            self.labels,
            batch_size=self.batch_size,
            pad_token_id=self.tokenizer.pad_token_id,
            padding_side=self.tokenizer.padding_side,
            device=self.device,
        )


class TextClassification(Task):
    id = "text-classification"
    name = "Text classification"
    description = "Text classification: predict a label (such as positive/negative) for each text."
    column_roles = ("Text column", "Label column")
    column_help = ("The column holding the text to classify.", "The column holding each row's label.")
    column_guesses = (("text", "sentence", "review", "input"), ("label", "labels", "class", "target"))
    has_labels = True
    metrics = ("eval_loss", "accuracy", "macro_f1")
    peft_type = "SEQ_CLS"  # makes peft train and save the new head (modules_to_save)
    auto_class = "AutoModelForSequenceClassification"
    runner_class = ClassificationRunner

    def read_rows(self, spec) -> Rows:
        seed, max_rows = spec.params["seed"], spec.params["max_rows"]
        rows = shuffle_and_cut(
            _read(spec.train_file, spec.train_format, spec, "training"), seed=seed, max_rows=max_rows
        )
        # Labels come from every training-file row in use, so a rare label held out for evaluation is still known.
        labels = sort_labels(example.label for example in rows)
        if len(labels) < 2:
            raise TrainingError(
                BAD_DATA,
                f"the label column {spec.label_column!r} has only one value ({labels[0]!r}) in the training rows; "
                "classification needs at least two different labels",
            )
        if not spec.eval_file:
            return Rows(*holdout_split(rows, spec.params["eval_fraction"], key=lambda e: e.label), labels)
        eval_rows, known = _read(spec.eval_file, spec.eval_format, spec, "evaluation"), set(labels)
        for example in eval_rows:
            if example.label not in known:
                raise TrainingError(
                    BAD_DATA,
                    f"evaluation file {Path(spec.eval_file).name!r}: row {example.row}: the label "
                    f"{example.label!r} does not occur in the training data (labels: {', '.join(labels)})",
                )
        return Rows(rows, eval_rows, labels)

    def options(self, spec) -> dict:
        """How the classifier pools: as the adapter it starts from did, else as the checkpoint was trained to."""
        if spec.start_from is not None:
            return {"pooling": adapter_pooling(spec.start_from.folder)}
        return {"pooling": checkpoint_pooling(spec.model_path)[0]}

    def choice_reasons(self, spec) -> dict:
        if spec.start_from is not None:
            return {"pooling": "as the adapter this job starts from was trained"}
        return {"pooling": checkpoint_pooling(spec.model_path)[1]}

    def card_lines(self, options: dict) -> list[str]:
        if options.get("pooling") != MEAN:
            return []
        return [
            "- Pooling: the mean of the token vectors (the checkpoint's own sentence-transformers pooling); "
            "`peftcore.load_predictor` pools this way, plain transformers uses BERT's pooler instead"
        ]

    def load_model(
        self, folder: Path, labels: Sequence[str], tokenizer, options: dict | None = None, loading: dict | None = None
    ):
        pooling = (options or {}).get("pooling", MODEL)
        return load_model(folder, labels, tokenizer.pad_token_id, pooling=pooling, loading=loading)

    def card_use_lines(self, max_length: int, example_prompt: str | None = None) -> list[str]:
        return [
            'texts = ["an example text to classify"]',
            f'inputs = tokenizer(texts, truncation=True, max_length={max_length}, padding=True, return_tensors="pt")',
            "with torch.no_grad():",
            "    predicted = model(**inputs).logits.argmax(dim=-1)",
            "print([labels[i] for i in predicted.tolist()])",
        ]

    def load_predictor(self, model_path: Path, adapter_dir: Path) -> Predictor:
        import torch

        from ..adapters import load_adapter
        from ..artifacts import read_labels

        adapter_dir = Path(adapter_dir)
        labels = read_labels(adapter_dir)
        tokenizer = self.load_tokenizer(adapter_dir)  # saved with the adapter: the exact one it was trained with
        model, _ = load_model(Path(model_path), labels, tokenizer.pad_token_id, pooling=adapter_pooling(adapter_dir))
        model = load_adapter(model, adapter_dir)  # full fine-tuning's folder replaces every weight
        model.eval()
        if torch.cuda.is_available():
            model.to("cuda")
        return Predictor(self, model, tokenizer, labels)

    def predict(
        self, predictor: Predictor, texts: Sequence[str], *, max_length: int = 128, max_new_tokens: int = 0
    ) -> list[dict]:
        """Per text: {"label": the most probable, "probabilities": {label: p}} in the order of the labels."""
        import torch

        if not texts:
            return []
        check_texts(texts)
        max_length = max(1, min(int(max_length), PLAYGROUND_MAX_LENGTH))
        tokenizer, labels = predictor.tokenizer, predictor.labels
        batch = collate(encode(tokenizer, list(texts), max_length), tokenizer.pad_token_id, tokenizer.padding_side)
        device = next(predictor.model.parameters()).device
        with torch.no_grad():
            logits = predictor.model(**{k: v.to(device) for k, v in batch.items()}).logits
        out = []
        for row in torch.softmax(logits.float(), dim=-1).cpu().tolist():
            best = max(range(len(row)), key=row.__getitem__)
            out.append({"label": labels[best], "probabilities": {label: round(p, 6) for label, p in zip(labels, row)}})
        return out


TASK = register(TextClassification())


def _read(path: str, fmt: str | None, spec, role: str) -> list[Example]:
    return read_file(read_examples, path, role, fmt=fmt, text_column=spec.text_column, label_column=spec.label_column)


def _inputs(feature: dict) -> dict:
    return {k: v for k, v in feature.items() if k != "target"}


def adapter_pooling(folder: Path) -> str:
    """The pooling an adapter was trained with (folders from before it was recorded used the model's own)."""
    from ..start_from import adapter_method

    return (adapter_method(folder) or {}).get("pooling") or MODEL


def load_model(
    model_path: Path, labels: Sequence[str], pad_token_id: int, pooling: str = MODEL, loading: dict | None = None
):
    """(model, new_modules): new_modules names the modules whose weights were freshly initialised, because
    the checkpoint had none for them (the classifier head of a plain encoder, sometimes a pooler); `pooling`
    (pooling.py) "mean" replaces a BERT pooler with the mean of the token vectors."""
    import torch
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
        **(loading or {}),
    )
    if model.config.pad_token_id is None:
        model.config.pad_token_id = pad_token_id  # needed to find the last real token of GPT-style models
    apply_pooling(model, pooling)  # before new_modules: a replaced pooler's missing weights are gone with it
    return model, new_modules(model, info["missing_keys"])


def encode(tokenizer, texts: Sequence[str], max_length: int) -> list[dict[str, list[int]]]:
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length)
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in encoded]
    return [{k: encoded[k][i] for k in keys} for i in range(len(texts))]


def collate(features: Sequence[dict[str, list[int]]], pad_token_id: int, padding_side: str = "right") -> dict:
    return pad(features, list(features[0]), {"input_ids": pad_token_id}, padding_side)


def predict_logits(model, features, *, batch_size: int, pad_token_id: int, padding_side: str, device):
    import torch

    was_training = model.training
    model.eval()
    chunks = []
    with torch.no_grad():  # no graph: evaluation needs no gradients, and would hold every batch's activations
        for start in range(0, len(features), batch_size):
            batch = collate(features[start : start + batch_size], pad_token_id, padding_side)
            chunks.append(model(**{k: v.to(device) for k, v in batch.items()}).logits.float().cpu())
    model.train(was_training)
    return torch.cat(chunks)


def evaluate(model, features, label_ids: Sequence[int], labels: Sequence[str], **predict_options) -> dict:
    """{"metrics": {eval_loss, accuracy, macro_f1}, "report": {confusion_matrix, per_class}}."""
    import torch
    import torch.nn.functional as F

    logits = predict_logits(model, features, **predict_options)
    targets = torch.tensor(list(label_ids), dtype=torch.long)
    predicted = logits.argmax(dim=-1).tolist()
    metrics = {"eval_loss": float(F.cross_entropy(logits, targets))}
    metrics.update(classification_metrics(targets.tolist(), predicted, len(labels)))
    return {"metrics": metrics, "report": classification_report(targets.tolist(), predicted, labels)}
