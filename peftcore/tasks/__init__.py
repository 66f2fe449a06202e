"""The registry of tasks. Each task is one module in this package that calls register() on import; the package
imports every module whose name does not start with "_", so a new task is one new file (and one row in
tests/peftcore/test_task_matrix.py). The protocol a task implements is in _base.py.

Standard library only at module level: the web process reads the registry (task_as_json, the fields of a Task,
architecture_refusal) to build and check its forms; a task's torch parts are imported inside its methods.
"""

from __future__ import annotations

from ..registry import Registry
from ._base import OPTIONAL_FIELDS, Predictor, Rows, Runner, Task, load_tokenizer, max_positions

__all__ = [
    "ALL_TASKS",
    "COLUMN_ROLES",
    "GENERATION_TASKS",
    "OPTIONAL_FIELDS",
    "SEQ2SEQ",
    "SFT",
    "TASKS",
    "TASKS_WITHOUT_REFERENCE",
    "TASK_NAMES",
    "TEXT_CLASSIFICATION",
    "Predictor",
    "Rows",
    "Runner",
    "Task",
    "UnknownTaskError",
    "all_tasks",
    "architecture_refusal",
    "check_task",
    "get_task",
    "load_tokenizer",
    "max_positions",
    "peft_task_type",
    "register",
    "task_as_json",
    "tasks_as_json",
]


class UnknownTaskError(ValueError):
    pass


_TASKS: Registry[Task] = Registry("task", lambda task: task.id, UnknownTaskError)


def register(task: Task) -> Task:
    return _TASKS.register(task)


def get_task(task_id: str) -> Task:
    return _TASKS.get(task_id)


def all_tasks() -> list[Task]:
    return _TASKS.all()


def task_as_json(task: Task) -> dict:
    return {
        "id": task.id,
        "name": task.name,
        "description": task.description,
        "column_roles": list(task.column_roles),
        "generative": task.generative,
        "has_labels": task.has_labels,
        "fields": list(task.fields),
        "column_paths": task.column_paths,
        "metrics": list(task.metrics),
    }


def tasks_as_json() -> list[dict]:
    return [task_as_json(t) for t in all_tasks()]


# The job form lists tasks in this order (the first is its default); a new task follows them.
_TASKS.discover(__name__, __path__, first=("text_classification", "sft", "seq2seq"))

# The names jobs/ and webapp/ import, derived from the registry (new code: get_task, all_tasks, task_as_json).
TEXT_CLASSIFICATION, SFT, SEQ2SEQ = "text-classification", "sft", "seq2seq"
TASKS: dict[str, str] = {t.id: t.description for t in all_tasks()}
ALL_TASKS = tuple(TASKS)
# The tasks a method without a peft adapter can train: a task whose loss compares with the untouched model
# (preference tuning) gets it by switching the adapter off, which only a peft adapter can.
TASKS_WITHOUT_REFERENCE = tuple(t.id for t in all_tasks() if not t.reference_by_disabling_adapter)
TASK_NAMES: dict[str, str] = {t.id: t.name for t in all_tasks()}
COLUMN_ROLES: dict[str, tuple[str, str]] = {t.id: t.column_roles for t in all_tasks()}
GENERATION_TASKS = frozenset(t.id for t in all_tasks() if t.generative)


def architecture_refusal(config: dict, task: str) -> str | None:
    """Why a model (by its config.json) cannot do a task, or None."""
    return get_task(task).architecture_refusal(config)


def check_task(task: str) -> str:
    return get_task(task).id


def peft_task_type(task: str):
    """The peft TaskType for a task; SEQ_CLS makes peft train and save the classifier head (modules_to_save)."""
    return get_task(task).peft_task_type()
