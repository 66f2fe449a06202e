"""One adapter per group (issue 21; PEFT-U): the rows split by the value of one column (a user, a customer, a
language), one small adapter trained per group, optionally each starting from a shared adapter trained on all
rows, and each evaluated on its own group's held-out rows.

Each adapter is an ordinary run of train.fit() on that group's rows (written to a JSON Lines file of their
own), so every check, default and report of a single job holds per group. The job's adapter folder holds them
all with an index file (index.json: group value -> folder) that load_group_predictor() reads. A group too small
to split into training and held-out rows, or whose rows a run refuses (one label only), is listed with the
reason, never dropped in silence. A group run keeps no checkpoints: stopped, it starts over.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import BAD_DATA, BAD_PARAMS, TrainingError
from .events import EventSink, phase
from .formats import cell_text, read_records

INDEX_FILE = "index.json"
MIN_GROUP_ROWS = 20  # fewer: too few to hold any rows out and still learn from the rest
MOST_GROUPS = 200


@dataclass
class GroupsResult:
    done: dict | None
    preempted: dict | None = None


class _GroupSink:
    """Passes a sub-run's events on as parts of one job: steps counted on from the runs before, phases named
    after the group, and each run's own done event kept back (the job's comes at the end)."""

    def __init__(self, sink: EventSink):
        self.sink, self.offset, self.steps, self.name = sink, 0, 0, ""

    def emit(self, event: dict) -> None:
        kind = event.get("event")
        if kind == "done":
            return
        if kind == "phase":
            event = {**event, "phase": f"{self.name}: {event.get('phase')}"}
        if kind == "start":
            self.steps = event.get("total_steps") or 0
            event = {**event, "total_steps": self.offset + self.steps}
        if kind in ("progress", "eval", "preempted", "checkpoint") and "step" in event:
            event = {**event, "step": self.offset + event["step"]}
            if "total_steps" in event:
                event["total_steps"] = self.offset + event["total_steps"]
        self.sink.emit(event)

    def next_run(self, name: str) -> None:
        self.offset += self.steps
        self.steps, self.name = 0, name


def split_rows(path: str, fmt: str | None, column: str) -> dict[str, list[dict]]:
    """The file's records by the text of `column` (a row without a value goes to no group, and is counted)."""
    groups: dict[str, list[dict]] = {}
    seen_column = False
    for row, record in read_records(path, fmt=fmt):
        if column in record:
            seen_column = True
        try:
            value = cell_text(record.get(column))
        except ValueError as exc:
            raise TrainingError(BAD_DATA, f"row {row}: the group column '{column}' {exc}") from None
        if value is None or not value.strip():
            continue
        groups.setdefault(value, []).append(record)
    if not seen_column:
        raise TrainingError(BAD_DATA, f"the data has no column '{column}' to split into groups")
    return groups


def _write(records: list[dict], path: Path) -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
    return path


def fit_groups(spec: dict, sink: EventSink, should_stop: Callable[[], bool] | None, fit: Callable) -> GroupsResult:
    """`fit`: train.fit, passed in by train.run (this module is what train.run calls, so it imports no train)."""
    column, shared_first = spec["group_column"], bool(spec.get("group_shared"))
    out = Path(spec["output_dir"])
    work = out / "groups-data"
    work.mkdir(parents=True, exist_ok=True)
    phase(sink, f"splitting the rows by '{column}'")
    train_groups = split_rows(spec["train_file"], spec.get("train_format"), column)
    eval_groups = split_rows(spec["eval_file"], spec.get("eval_format"), column) if spec.get("eval_file") else {}
    if len(train_groups) > MOST_GROUPS:
        raise TrainingError(
            BAD_PARAMS,
            f"'{column}' has {len(train_groups):,} different values; one adapter per group trains at most "
            f"{MOST_GROUPS}: pick a column with fewer values",
        )
    base = {
        key: value
        for key, value in spec.items()
        if key
        not in ("group_column", "group_shared", "resume_from", "checkpoint_every_steps", "checkpoint_every_seconds")
    }
    wrapped = _GroupSink(sink)
    stop = should_stop or (lambda: False)
    shared = None
    if shared_first:
        wrapped.next_run("shared adapter (all rows)")
        result = fit({**base, "output_dir": str(out / "runs" / "shared")}, wrapped, stop)
        if result.preempted:
            return GroupsResult(None, preempted=result.preempted)
        shared = result
    start = {"adapter_dir": str(shared.adapter_dir), "mode": "continue"} if shared else base.get("start_from")
    entries, skipped = [], []
    ordered = sorted(train_groups.items(), key=lambda item: (-len(item[1]), item[0]))
    for number, (value, records) in enumerate(ordered, 1):
        if len(records) < MIN_GROUP_ROWS:
            skipped.append({"group": value, "rows": len(records), "reason": f"fewer than {MIN_GROUP_ROWS} rows"})
            continue
        wrapped.next_run(f"group '{value}' ({number} of {len(ordered)})")
        group_spec = {
            **base,
            "start_from": start,
            "train_file": str(_write(records, work / f"train-{number}.jsonl")),
            "train_format": "jsonl",
            "output_dir": str(out / "runs" / f"group-{number}"),
        }
        if value in eval_groups:
            group_spec.update(
                eval_file=str(_write(eval_groups[value], work / f"eval-{number}.jsonl")), eval_format="jsonl"
            )
        else:  # held out of the group's own rows
            group_spec.update(eval_file=None, eval_format=None)
        try:
            result = fit(group_spec, wrapped, stop)
        except TrainingError as exc:
            if exc.kind != BAD_DATA:
                raise
            skipped.append({"group": value, "rows": len(records), "reason": exc.message})
            continue
        if result.preempted:
            return GroupsResult(None, preempted=result.preempted)
        entries.append((value, number, result))
    if not entries:
        reasons = "; ".join(f"'{s['group']}': {s['reason']}" for s in skipped[:5])
        raise TrainingError(BAD_DATA, f"no group of '{column}' could be trained ({reasons})")
    adapter_dir = _assemble(out / "adapter", shared, entries)
    report = _report(column, shared, entries, skipped)
    report["efficiency"]["adapter_bytes"] = sum(p.stat().st_size for p in adapter_dir.rglob("*") if p.is_file())
    shutil.rmtree(work, ignore_errors=True)
    done = {"event": "done", "adapter_dir": str(adapter_dir.resolve()), "metrics": report["metrics"], "report": report}
    sink.emit(done)
    return GroupsResult(done)


def _assemble(folder: Path, shared, entries) -> Path:
    """One folder: shared/ (when trained), groups/<n>/ per group, and index.json naming each."""
    folder.mkdir(parents=True, exist_ok=True)
    index = {"groups": {}, "shared": None}
    if shared is not None:
        shutil.copytree(shared.adapter_dir, folder / "shared")
        index["shared"] = "shared"
    for value, number, result in entries:
        shutil.copytree(result.adapter_dir, folder / "groups" / str(number))
        index["groups"][value] = f"groups/{number}"
    (folder / INDEX_FILE).write_text(json.dumps(index, indent=1, ensure_ascii=False), encoding="utf-8")
    return folder


def _report(column: str, shared, entries, skipped) -> dict:
    """The first group's report as the frame (method, params, device); metrics are the groups' averaged by their
    evaluation rows: what the job scores when each row goes to its own group's adapter."""
    reports = [(value, number, result.done["report"]) for value, number, result in entries]
    first = reports[0][2]
    total_eval = sum(r.get("eval_rows", 0) for _, _, r in reports) or 1
    names = [n for n, v in first["metrics"].items() if isinstance(v, (int, float)) and n != "train_loss"]
    metrics = {
        name: sum(r["metrics"].get(name, 0) * r.get("eval_rows", 0) for _, _, r in reports) / total_eval
        for name in names
    }
    groups = []
    for value, number, report in reports:
        before = report.get("baseline_metrics") or {}
        groups.append(
            {
                "group": value,
                "adapter": f"groups/{number}",
                "train_rows": report.get("train_rows"),
                "eval_rows": report.get("eval_rows"),
                "metrics": report["metrics"],
                # a group run starting from the shared adapter measures it first on the group's rows
                "before": before,
                "gain": {n: report["metrics"][n] - before[n] for n in names if isinstance(before.get(n), (int, float))},
            }
        )
    keep = ("task", "labels", "trainable_params", "total_params", "device", "method", "method_params", "params")
    report = {key: first[key] for key in keep if key in first}
    report.update(
        metrics=metrics,
        group_column=column,
        groups=groups,
        too_small=skipped,
        before_is="the shared adapter" if shared is not None else "the untrained model",
        shared={"metrics": shared.done["report"]["metrics"], "eval_rows": shared.done["report"].get("eval_rows")}
        if shared is not None
        else None,
        train_rows=sum(r.get("train_rows", 0) for _, _, r in reports),
        eval_rows=sum(r.get("eval_rows", 0) for _, _, r in reports),
        train_seconds=sum(r.get("train_seconds", 0) for _, _, r in reports)
        + (shared.done["report"].get("train_seconds", 0) if shared is not None else 0),
        efficiency={
            "peak_memory_bytes": max((r.get("efficiency") or {}).get("peak_memory_bytes") or 0 for _, _, r in reports)
        },
        choices=first.get("choices", {}),
    )
    return report


def load_group_predictor(model_path: Path, folder: Path, group: str):
    """The predictor for one group of a group run's adapter folder, found through its index file; a group that
    had no adapter of its own gets the shared one (KeyError when there is none)."""
    from .predict import load_predictor
    from .task_routing import read, route_to

    routed = read(folder)
    if routed is not None:  # one adapter, a task per group (task_routing.py)
        if group not in routed["tasks"]:
            raise KeyError(f"the adapter has no task for the group '{group}'")
        predictor = load_predictor(model_path, folder)
        route_to(predictor.model, routed["tasks"][group])
        return predictor
    index = json.loads((Path(folder) / INDEX_FILE).read_text(encoding="utf-8"))
    relative = index["groups"].get(group) or index.get("shared")
    if relative is None:
        raise KeyError(f"no adapter for the group '{group}' and no shared adapter")
    return load_predictor(model_path, Path(folder) / relative)
