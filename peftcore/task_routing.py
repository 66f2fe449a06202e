"""A task per group (Poly, multitask prompt tuning): with a group column, a method that routes rows by a task id
trains one adapter in which each group is a task. The skills (Poly) or the shared prompt (MPT) learn from every
row; each group's routing (its mix of skills, its task matrix) from its own rows. Against one adapter per group
(groups.py), a small group borrows what the others learned, and the job is one training run.

A row's task id is its group value's place among the training file's values, sorted; the adapter folder's
tasks.json maps value -> id. Each encoded row carries its id as task_ids, which collate turns into a tensor that
goes to the model with the batch (peft's forward takes task_ids for both methods). The report scores each group
on its own held-out rows, before and after training, as a group run's report does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .errors import BAD_DATA, BAD_PARAMS, TrainingError
from .formats import cell_text, read_records

TASKS_FILE = "tasks.json"
MOST_TASKS = 200  # as many groups as one adapter per group trains


@dataclass
class Tasks:
    column: str
    values: list[str]  # a task id is the index of its group value
    train: list[int]  # the task id of each training row, in the order of the rows
    eval: list[int]


# Where the features reach the model whole: a preference pair's two answers go through their own batches.
TASKS = ("text-classification", "sft")


def routes_tasks(method, group_column: str | None) -> bool:
    """Whether a group column makes this method's job one adapter with a task per group."""
    return bool(group_column) and method.expand_tasks is not None


def problem(method, task: str, shared: bool = False) -> str | None:
    """Why a group column cannot give this method's job a task per group (None: it can), for the form and the
    worker alike."""
    if task not in TASKS:
        return (
            f"{method.label} takes a task per group for text classification and SFT; for this task, pick another "
            "method to train one adapter per group"
        )
    if shared:
        return (
            f"{method.label} trains one adapter with a task per group, whose shared part already learns from every "
            "row: turn off the shared adapter"
        )
    return None


def assign(column: str, rows, train: tuple[str, str | None], evaluation: tuple[str, str | None] | None) -> Tasks:
    """Each training and evaluation row's task id. train, evaluation: (path, format) of the files the rows came
    from (evaluation None: the evaluation rows were held out of the training file). A row without a group value,
    or an evaluation file's row whose group the training file lacks, is a bad_data error naming the rows."""
    train_values = _values_by_row(column, *train, role="training")
    eval_values = _values_by_row(column, *evaluation, role="evaluation") if evaluation else train_values
    missing = [
        (role, e.row)
        for role, part, values in (
            ("training", rows.train, train_values),
            ("evaluation" if evaluation else "training", rows.eval, eval_values),  # held out: the training file's
        )
        for e in part
        if values.get(e.row) is None
    ]
    if missing:
        role = missing[0][0]
        rows_of_file = sorted(row for r, row in missing if r == role)
        shown = ", ".join(map(str, rows_of_file))
        raise TrainingError(
            BAD_DATA,
            f"{len(rows_of_file)} row(s) of the {role} file have no '{column}' (rows {_few(shown)}); each row's "
            "group is its task: fill the column in, or drop those rows",
        )
    # Every value of the training file, so a small group whose rows were all held out still has a task (an
    # untrained one: its table row says it had no training rows); an evaluation file brings no new ones.
    values = sorted({value for value in train_values.values() if value is not None})
    if len(values) > MOST_TASKS:
        raise TrainingError(
            BAD_PARAMS,
            f"'{column}' has {len(values):,} different values; a task per group trains at most {MOST_TASKS}: pick a "
            "column with fewer values",
        )
    ids = {value: number for number, value in enumerate(values)}
    unknown = sorted({eval_values[e.row] for e in rows.eval} - set(ids))
    if unknown:
        raise TrainingError(
            BAD_DATA,
            f"the evaluation rows hold the '{column}' value(s) {_few(', '.join(map(repr, unknown)))}, which the "
            "training file lacks: a task is learned from its own rows, so each group needs some in the training data",
        )
    return Tasks(
        column,
        values,
        [ids[train_values[e.row]] for e in rows.train],
        [ids[eval_values[e.row]] for e in rows.eval],
    )


def tag(features: list[dict], task_ids: list[int]) -> None:
    """Give each encoded row its task id (collate stacks them into the batch's task_ids)."""
    for feature, task in zip(features, task_ids, strict=True):
        feature["task_ids"] = task


def by_group(runner, model, features: list[dict], rows, tasks: Tasks) -> dict:
    """{group value: metrics} of each group's evaluation rows, all of them (before and after training alike, so
    the gain compares the same rows), scored alone: the per-step metrics (a written answer's loss, not its
    generations)."""
    scores = {}
    for number, value in enumerate(tasks.values):
        mine = [i for i in range(len(features)) if tasks.eval[i] == number]
        if mine:
            evaluation = runner.evaluate(model, [features[i] for i in mine], [rows[i] for i in mine], final=False)
            scores[value] = {"metrics": evaluation["metrics"], "rows": len(mine)}
    return scores


def report_section(tasks: Tasks, before: dict, after: dict, *, started_from_adapter: bool = False) -> dict:
    """The report's groups table, as a group run's (groups.py): each group's rows and scores, and the gain."""
    groups = []
    for number, value in enumerate(tasks.values):
        now = (after.get(value) or {}).get("metrics") or {}
        then = (before.get(value) or {}).get("metrics") or {}
        groups.append(
            {
                "group": value,
                "task_id": number,
                "train_rows": tasks.train.count(number),
                "eval_rows": tasks.eval.count(number),
                "metrics": now,
                "before": then,
                "gain": {
                    name: now[name] - then[name]
                    for name in now
                    if isinstance(now[name], (int, float)) and isinstance(then.get(name), (int, float))
                },
            }
        )
    names = sorted({name for group in groups for name in group["metrics"]})
    return {
        "group_column": tasks.column,
        "task_per_group": True,
        "groups": groups,
        "group_metrics": names,  # what each group is scored on (the table's columns)
        "before_is": "the adapter it started from" if started_from_adapter else "the untrained model",
    }


def write(folder: Path, tasks: Tasks) -> None:
    index = {"column": tasks.column, "tasks": {value: number for number, value in enumerate(tasks.values)}}
    (Path(folder) / TASKS_FILE).write_text(json.dumps(index, indent=1, ensure_ascii=False), encoding="utf-8")


def read(folder: Path) -> dict | None:
    """{"column", "tasks": {group value: task id}} of an adapter with a task per group, else None."""
    path = Path(folder) / TASKS_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def route_to(model, task: int) -> None:
    """Make a loaded adapter route every row without a task id to `task` (one group's predictor)."""
    import importlib

    from .adapters import ONE_TASK

    kind = next(iter(model.peft_config.values())).peft_type
    importlib.import_module(f"peftcore.methods.{ONE_TASK[kind]}").single_task(model, task)


def _values_by_row(column: str, path: str, fmt: str | None, *, role: str) -> dict[int, str | None]:
    values, seen = {}, False
    for row, record in read_records(path, fmt=fmt):
        seen = seen or column in record
        try:
            value = cell_text(record.get(column))
        except ValueError as exc:
            raise TrainingError(BAD_DATA, f"{role} file, row {row}: the group column '{column}' {exc}") from None
        values[row] = value.strip() if value and value.strip() else None
    if not seen:
        raise TrainingError(BAD_DATA, f"the {role} data has no column '{column}' to take each row's task from")
    return values


def _few(text: str, most: int = 5) -> str:
    parts = text.split(", ")
    return ", ".join(parts[:most]) + (" ..." if len(parts) > most else "")
