"""The registry of tasks. Each task is one module in this package that calls register() on import; the package
imports every module whose name does not start with "_", so a new task is one new file (and one row in
tests/peftcore/test_task_matrix.py). The protocol a task implements is in _base.py.

Standard library only at module level: the web process reads the registry (task_as_json, the fields of a Task,
architecture_refusal) to build and check its forms; a task's torch parts are imported inside its methods.
"""

from __future__ import annotations

import importlib
import pkgutil

from ._base import OPTIONAL_FIELDS, Predictor, Rows, Runner, Task, load_tokenizer, max_positions

__all__ = ["OPTIONAL_FIELDS", "Predictor", "Rows", "Runner", "Task", "UnknownTaskError", "all_tasks", "get_task",
           "load_tokenizer", "max_positions", "register", "task_as_json", "tasks_as_json"]


class UnknownTaskError(ValueError):
    pass


_REGISTRY: dict[str, Task] = {}


def register(task: Task) -> Task:
    if task.id in _REGISTRY:
        raise ValueError(f"task {task.id!r} is already registered")
    _REGISTRY[task.id] = task
    return task


def get_task(task_id: str) -> Task:
    try:
        return _REGISTRY[task_id]
    except (KeyError, TypeError):
        raise UnknownTaskError(f"unknown task {task_id!r}; known tasks: {', '.join(_REGISTRY)}") from None


def all_tasks() -> list[Task]:
    return list(_REGISTRY.values())


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
_FIRST = ("text_classification", "sft", "seq2seq")


def _discover() -> None:
    names = [info.name for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_")]
    for name in [n for n in _FIRST if n in names] + sorted(n for n in names if n not in _FIRST):
        importlib.import_module(f"{__name__}.{name}")


_discover()

# The names jobs/ and webapp/ import, derived from the registry (new code: get_task, all_tasks, task_as_json).
TEXT_CLASSIFICATION, SFT, SEQ2SEQ = "text-classification", "sft", "seq2seq"
TASKS: dict[str, str] = {t.id: t.description for t in all_tasks()}
ALL_TASKS = tuple(TASKS)
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
