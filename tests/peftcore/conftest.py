from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.tiny_models import (
    make_sentiment_file,
    make_tiny_bert,
    make_tiny_gemma3,
    make_tiny_gpt2,
    make_tiny_llama,
    make_tiny_t5,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp("models") / "tiny-bert")


@pytest.fixture(scope="session")
def bert_without_dropout(tiny_bert, tmp_path_factory) -> Path:
    """The tiny BERT with every dropout off: runs that split a batch differently must then end alike."""
    folder = tmp_path_factory.mktemp("models") / "tiny-bert-no-dropout"
    shutil.copytree(tiny_bert, folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, classifier_dropout=0.0)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


SHAPES = {"gpt2": make_tiny_gpt2, "llama": make_tiny_llama, "gemma3": make_tiny_gemma3, "t5": make_tiny_t5}


@pytest.fixture(scope="session")
def tiny_shape(tmp_path_factory):
    """tiny_shape("gpt2" | "llama" | "gemma3" | "t5") -> the folder of that tiny random model (built once per session)."""
    folders: dict[str, Path] = {}

    def get(shape: str) -> Path:
        if shape not in folders:
            folders[shape] = SHAPES[shape](tmp_path_factory.mktemp("models") / f"tiny-{shape}")
        return folders[shape]

    return get


@pytest.fixture(scope="session")
def sentiment_tsv(tmp_path_factory) -> Path:
    return make_sentiment_file(tmp_path_factory.mktemp("data") / "train.tsv", rows=64)


def make_spec(model: Path, train_file: Path, out: Path, *, method: str = "lora", **overrides) -> dict:
    spec = {
        "task": "text-classification",
        "model_path": str(model),
        "method": method,
        "method_params": {},
        "train_file": str(train_file),
        "train_format": None,
        "eval_file": None,
        "eval_format": None,
        "text_column": "sentence",
        "label_column": "label",
        "params": {"epochs": 1, "batch_size": 16},
        "output_dir": str(out),
        "threads": None,
        "metadata": {"base_model": "local:tiny-bert", "dataset_sha256": "ab" * 32, "dataset_name": "train.tsv"},
    }
    spec.update(overrides)
    return spec


def loss_before_and_after(model, method, batch, targets, steps: int) -> tuple[float, float]:
    """Train a built method a few optimizer steps on one batch at its recommended learning rate; the loss on that
    batch (eval mode) before and after."""
    import torch
    import torch.nn.functional as F

    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=method.recommended_learning_rate
    )

    def loss_now():
        model.eval()
        with torch.no_grad():
            return F.cross_entropy(model(**batch).logits, targets).item()

    before = loss_now()
    for step in range(steps):
        model.train()
        loss = F.cross_entropy(model(**batch).logits, targets)
        if method.extra_loss:
            loss = loss + method.extra_loss(model)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if method.on_step:
            method.on_step(model, step)
    return before, loss_now()


def build_classifier(folder: Path, name: str, **params):
    """(the method `name` built with `params` on a fresh two-label classifier of `folder`, its tokenizer)."""
    import torch

    from peftcore.methods import get_method
    from peftcore.schema import validate_params
    from peftcore.tasks import load_tokenizer
    from peftcore.tasks.text_classification import load_model

    method = get_method(name)
    tokenizer = load_tokenizer(folder)
    torch.manual_seed(0)
    model, new_modules = load_model(folder, ["0", "1"], tokenizer.pad_token_id)
    clean, errors = validate_params(method.params, params)
    assert errors == {}
    return method.build(model, clean, "text-classification", new_modules=new_modules), tokenizer
