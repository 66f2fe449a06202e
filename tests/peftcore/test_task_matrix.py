"""Every registered task, end to end on a tiny model: a few optimizer steps, the adapter folder saved, and the
folder loaded back for the playground. A new task needs one row in ROWS; the registry must stay readable
without torch, and the generic training code must name no task."""

import ast
import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from peftcore.adapters import METHOD_FILE
from peftcore.artifacts import LABELS_FILE, read_labels
from peftcore.events import ListSink
from peftcore.predict import adapter_task, load_predictor, predict
from peftcore.tasks import OPTIONAL_FIELDS, all_tasks, get_task
from peftcore.train import fit
from tests.tiny_models import make_preference_file, make_review_answer_file, make_sentiment_file

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Row:
    shape: str  # the tiny model: bert, gpt2, llama or t5
    data: Callable[[Path], Path]  # writes the training file at the path given
    columns: dict  # text_column and label_column, and any of the task's own fields
    options: dict = field(default_factory=dict)  # the task's own settings, as its adapter folder records them
    texts: tuple[str, ...] = ("the film was lovely and superb", "the film was dull and tedious")


ROWS = {
    "text-classification": Row(
        "bert",
        lambda path: make_sentiment_file(path.with_suffix(".tsv")),
        {"text_column": "sentence", "label_column": "label"},
    ),
    "sft": Row(
        "llama",
        lambda path: make_review_answer_file(path.with_suffix(".jsonl")),
        {"text_column": "review", "label_column": "answer", "template": "alpaca"},
        {"template": "alpaca"},
    ),
    "preference": Row(
        "llama",
        lambda path: make_preference_file(path.with_suffix(".jsonl")),
        {"text_column": "review", "label_column": "chosen", "input_column": "rejected", "template": "alpaca"},
        {"template": "alpaca", "beta": 0.1},
    ),
    "seq2seq": Row(
        "t5",
        lambda path: make_review_answer_file(path.with_suffix(".jsonl")),
        {"text_column": "review", "label_column": "answer"},
    ),
}
TASK_IDS = [task.id for task in all_tasks()]


def test_every_registered_task_has_a_row():
    assert set(ROWS) == set(TASK_IDS)


@pytest.fixture(scope="module")
def model_folder(tiny_bert, tiny_shape):
    return lambda shape: tiny_bert if shape == "bert" else tiny_shape(shape)


@pytest.mark.parametrize("task_id", TASK_IDS)
def test_a_task_trains_saves_and_predicts(model_folder, tmp_path, task_id):
    task, row = get_task(task_id), ROWS[task_id]
    model = model_folder(row.shape)
    spec = {
        "task": task_id,
        "model_path": str(model),
        "method": "lora",
        "train_file": str(row.data(tmp_path / "data")),
        "output_dir": str(tmp_path / "out"),
        "metadata": {"base_model": "local:tiny"},
        **row.columns,
        "params": {"epochs": 1, "batch_size": 8, "max_length": 48, "max_rows": 24},
    }
    sink = ListSink()
    result = fit(spec, sink)

    kinds = [e["event"] for e in sink.events]
    assert kinds == ["start", "eval"] + ["progress"] * 3 + ["eval", "done"]  # 22 training rows, batches of 8
    start, baseline, done = sink.events[0], sink.events[1], sink.events[-1]
    assert start["task"] == task_id and bool(start["labels"]) == task.has_labels
    assert set(baseline["metrics"]) == set(task.metrics)
    assert set(done["metrics"]) == set(task.metrics) | {"train_loss"}
    report = done["report"]
    assert report["task"] == task_id and report["baseline_metrics"] == baseline["metrics"]
    assert ("samples" in report) == task.generative
    assert {key: report["lineage"].get(key) for key in row.options} == row.options

    folder = result.adapter_dir
    recorded = json.loads((folder / METHOD_FILE).read_text(encoding="utf-8"))
    assert recorded["task"] == task_id and adapter_task(folder) == task_id
    assert {key: recorded.get(key) for key in row.options} == row.options
    assert read_labels(folder) == start["labels"] and (folder / LABELS_FILE).is_file()
    card = (folder / "README.md").read_text(encoding="utf-8")
    assert task.auto_class in card and f"adapter for {task_id}" in card

    predictor = load_predictor(model, folder)
    answers = predict(predictor, list(row.texts), max_length=48, max_new_tokens=4)
    assert len(answers) == len(row.texts)
    for answer in answers:
        if task.has_labels:
            assert answer["label"] in start["labels"] and set(answer["probabilities"]) == set(start["labels"])
        else:
            assert set(answer) == {"generation"} and isinstance(answer["generation"], str)


LIGHT_REGISTRY = """
import sys
import peftcore.tasks
from peftcore.tasks import COLUMN_ROLES, GENERATION_TASKS, TASK_NAMES, all_tasks, architecture_refusal, tasks_as_json
tasks_as_json()
for task in all_tasks():
    task.architecture_refusal({"model_type": "t5", "architectures": ["T5ForConditionalGeneration"],
                               "is_encoder_decoder": True})
    task.spec_problem({"text_column": "a", "label_column": "b"})
architecture_refusal({"model_type": "bert"}, "sft")
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers", "peft", "django"))
print(",".join(loaded))
"""


def test_the_registry_reads_without_torch_or_django():
    result = subprocess.run(
        [sys.executable, "-c", LIGHT_REGISTRY], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_the_registry_describes_each_task_for_the_web():
    from peftcore.tasks import tasks_as_json

    for entry in tasks_as_json():
        assert entry["id"] and entry["name"] and entry["description"] and len(entry["column_roles"]) == 2
        assert set(entry["fields"]) <= set(OPTIONAL_FIELDS) and entry["metrics"]


# The training core that every task goes through: a task's name or branch here means the task lives in two places.
GENERIC_MODULES = (
    "train.py",
    "loop.py",
    "spec.py",
    "checkpoints.py",
    "report.py",
    "saving.py",
    "failures.py",
    "artifacts.py",
    "adapters.py",
)


def test_the_generic_training_code_names_no_task():
    task_ids = set(TASK_IDS)
    offenders = []
    for name in GENERIC_MODULES:
        tree = ast.parse((REPO_ROOT / "peftcore" / name).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and node.value in task_ids:
                offenders.append(f"{name}:{node.lineno}: {node.value!r}")
            if isinstance(node, (ast.Name, ast.alias)):
                identifier = node.id if isinstance(node, ast.Name) else node.name
                if identifier in ("SFT", "SEQ2SEQ", "TEXT_CLASSIFICATION", "GENERATION_TASKS"):
                    offenders.append(f"{name}:{getattr(node, 'lineno', '?')}: {identifier}")
    assert offenders == []
