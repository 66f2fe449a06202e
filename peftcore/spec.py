"""The job spec: the JSON object `python -m peftcore train --spec` reads (the studio's runner writes it), checked
into a TrainSpec. What a spec needs beyond the common keys is the task's to say (Task.spec_problem)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from . import defaults
from .alora import activation_problem
from .base_pruning import base_pruning_problem
from .combine_run import check_section
from .errors import BAD_PARAMS, TrainingError
from .light_peft import pruning_problem
from .methods import Method, UnknownMethodError, get_method
from .quantize import quantize_problem
from .schema import format_errors, validate_params
from .sft import AUTO
from .start_from import StartFrom, parse_start_from
from .task_routing import problem as task_problem
from .task_routing import routes_tasks
from .tasks import UnknownTaskError, get_task
from .training_params import TRAINING_PARAMS

REQUIRED_KEYS = ("task", "model_path", "method", "train_file", "output_dir")


@dataclass
class TrainSpec:
    """A checked spec: the method looked up and every parameter validated, defaults filled in."""

    task: str
    method: Method
    method_params: dict
    params: dict
    model_path: Path
    train_file: str
    train_format: str | None
    eval_file: str | None
    eval_format: str | None
    text_column: str
    label_column: str
    output_dir: Path
    threads: int | None
    metadata: dict = field(default_factory=dict)
    start_from: StartFrom | None = None  # train on from a finished job's adapter (see start_from.py)
    combine: dict | None = None  # a combination job: finished adapters combined, then evaluated (combine_run.py)
    # Read by the tasks that name them in Task.fields (SFT): an extra input column appended to the prompt, or a
    # chat `messages` column instead of text_column (prompt) and label_column (response); the prompt template.
    input_column: str | None = None
    messages_column: str | None = None
    template: str = AUTO
    # Checkpoints (checkpoints.py): where they go, how often (steps or seconds; neither: only when preempted), the
    # one to resume from; and the most rows one forward pass takes (gradients add up to the whole batch's).
    checkpoint_dir: Path | None = None
    checkpoint_every_steps: int | None = None
    checkpoint_every_seconds: float | None = None
    resume_from: Path | None = None
    micro_batch_size: int | None = None  # None: the whole batch (set once the batch size is resolved)
    # Data parallelism (distributed.py): how many processes train this job, this one's rank, rank 0's port.
    processes: int = 1
    rank: int = 0
    port: int | None = None
    # Why each setting left empty got its value ("params.epochs" -> reason): what the studio chose at submission
    # and what training chose from the data (defaults.py); the report shows them.
    choices: dict = field(default_factory=dict)
    # A group column read by a method that routes rows by task (task_routing.py): one adapter, a task per group.
    group_column: str | None = None

    def choose(self, facts: defaults.Facts) -> None:
        """Resolve what the facts allow of the settings still empty, recording why."""
        chosen = defaults.resolve(facts, self.method, self.params, self.method_params)
        self.params.update(chosen.params)  # in place: callers hold the dict
        self.method_params.update(chosen.method_params)
        self.choices.update(chosen.reasons)
        batch = self.params.get("batch_size")
        if batch:  # more rows than the batch would change nothing: the batch is the most a step reads
            self.micro_batch_size = min(self.micro_batch_size or batch, batch)


def parse_spec(spec: dict) -> TrainSpec:
    if not isinstance(spec, dict):
        raise TrainingError(BAD_PARAMS, "the job spec must be a JSON object")
    missing = [key for key in REQUIRED_KEYS if not spec.get(key)]
    if missing:
        raise TrainingError(BAD_PARAMS, f"the job spec is missing: {', '.join(missing)}")
    try:
        task = get_task(spec["task"])
        method = get_method(spec["method"])
    except (UnknownTaskError, UnknownMethodError) as exc:
        raise TrainingError(BAD_PARAMS, str(exc)) from exc
    if task.id not in method.tasks:
        raise TrainingError(BAD_PARAMS, f"method {method.name!r} does not support the task {task.id!r}")
    problem = task.spec_problem(spec)
    if problem:
        raise TrainingError(BAD_PARAMS, problem)
    method_params, method_errors = validate_params(method.params, spec.get("method_params"))
    params, param_errors = validate_params(TRAINING_PARAMS, spec.get("params"))
    if method_errors or param_errors:
        parts = []
        if method_errors:
            parts.append(f"{method.label} parameters: {format_errors(method_errors)}")
        if param_errors:
            parts.append(f"training parameters: {format_errors(param_errors)}")
        raise TrainingError(BAD_PARAMS, "; ".join(parts))
    problem = (
        quantize_problem(method, params)
        or pruning_problem(method, method_params, params)
        or base_pruning_problem(method, method_params, params, task)
        or activation_problem(method, method_params, task.id)
    )
    if problem:
        raise TrainingError(BAD_PARAMS, problem)
    threads = spec.get("threads")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise TrainingError(BAD_PARAMS, f"threads must be a whole number of at least 1 (got {threads!r})")
    output_dir = Path(spec["output_dir"])
    every_seconds = spec.get("checkpoint_every_seconds")
    if every_seconds is not None and (
        isinstance(every_seconds, bool)
        or not isinstance(every_seconds, (int, float))
        or not math.isfinite(every_seconds)
        or every_seconds <= 0
    ):
        raise TrainingError(
            BAD_PARAMS, f"checkpoint_every_seconds must be a number above 0 or null (got {every_seconds!r})"
        )
    micro_batch_size = _whole_number(spec, "micro_batch_size")
    processes = _whole_number(spec, "processes") or 1
    rank = spec.get("rank") or 0
    if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < processes:
        raise TrainingError(BAD_PARAMS, f"rank must be a whole number from 0 to {processes - 1} (got {rank!r})")
    resume_from = _path(spec, "resume_from")
    choices = spec.get("choices") or {}
    if not isinstance(choices, dict):
        raise TrainingError(BAD_PARAMS, "choices must be an object of reasons")
    parsed = TrainSpec(
        task=task.id,
        method=method,
        method_params=method_params,
        params=params,
        model_path=Path(spec["model_path"]),
        train_file=spec["train_file"],
        train_format=spec.get("train_format"),
        eval_file=spec.get("eval_file"),
        eval_format=spec.get("eval_format"),
        text_column=spec.get("text_column") or "",
        label_column=spec.get("label_column") or "",
        output_dir=output_dir,
        threads=threads,
        metadata=dict(spec.get("metadata") or {}),
        start_from=parse_start_from(spec.get("start_from")),
        combine=check_section(spec.get("combine")),
        input_column=spec.get("input_column") or None,
        messages_column=spec.get("messages_column") or None,
        template=spec.get("template") or AUTO,
        checkpoint_dir=Path(_path(spec, "checkpoint_dir") or output_dir / "checkpoints"),
        checkpoint_every_steps=_whole_number(spec, "checkpoint_every_steps"),
        checkpoint_every_seconds=every_seconds,
        resume_from=Path(resume_from) if resume_from else None,
        micro_batch_size=micro_batch_size,
        processes=processes,
        rank=rank,
        port=_whole_number(spec, "port"),
        choices={str(key): str(value) for key, value in choices.items()},
        group_column=spec.get("group_column") if routes_tasks(method, spec.get("group_column")) else None,
    )
    if parsed.group_column and (problem := task_problem(method, task.id, bool(spec.get("group_shared")))):
        raise TrainingError(BAD_PARAMS, problem)
    parsed.choose(defaults.Facts(generative=task.generative, has_labels=task.has_labels))
    return parsed


def _whole_number(spec: dict, key: str) -> int | None:
    value = spec.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise TrainingError(BAD_PARAMS, f"{key} must be a whole number of at least 1 or null (got {value!r})")
    return value


def _path(spec: dict, key: str) -> str | None:
    value = spec.get(key)
    if value is not None and not isinstance(value, str):
        raise TrainingError(BAD_PARAMS, f"{key} must be a folder path or null (got {value!r})")
    return value or None
