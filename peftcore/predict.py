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
from .start_from import adapter_method
from .tasks import TEXT_CLASSIFICATION

MAX_TEXTS = 32  # texts per request: the playground is for trying, not batch inference
MAX_LENGTH = 512
MAX_NEW_TOKENS = 256


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


@dataclass
class Generator:
    task: object  # a generation.GenerationTask holding the tokenizer and the template the adapter trained with
    model: object


def adapter_task(adapter_dir: Path) -> str:
    """The task an adapter folder was trained for (classification for folders from before it was recorded)."""
    return (adapter_method(Path(adapter_dir)) or {}).get("task") or TEXT_CLASSIFICATION


def load_generator(model_path: Path, adapter_dir: Path) -> Generator:
    import torch

    from .classification import load_tokenizer, max_positions
    from .generation import GenerationTask, load_model

    adapter_dir = Path(adapter_dir)
    recorded = adapter_method(adapter_dir) or {}
    task = GenerationTask(recorded["task"], template=recorded.get("template") or "auto")
    task.tokenizer = load_tokenizer(adapter_dir)
    model, _ = load_model(Path(model_path), task.task)
    model = load_adapter(model, adapter_dir)
    model.eval()
    if torch.cuda.is_available():
        model.to("cuda")
    task.device = next(model.parameters()).device
    task.position_limit = max_positions(model, task.tokenizer)
    return Generator(task, model)


def generate(generator: Generator, texts: Sequence[str], *, max_length: int = 512, max_new_tokens: int = 64) -> list[dict]:
    """Per text: {"generation": the adapter's greedy answer}, the prompt built as in training."""
    from .sft import SftExample

    if not texts:
        return []
    if len(texts) > MAX_TEXTS:
        raise ValueError(f"at most {MAX_TEXTS} texts at a time")
    task = generator.task
    task.max_length = max(1, min(int(max_length), MAX_LENGTH))
    prompts = [task.prompt(SftExample(0, prompt=text, response="-")) for text in texts]
    answers = task.generate(generator.model, prompts, max(1, min(int(max_new_tokens), MAX_NEW_TOKENS)))
    return [{"generation": answer} for answer in answers]
