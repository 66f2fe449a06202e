"""Command line: `python -m peftcore train|inspect|methods|merge|combine`.

`train --spec` is what the studio's runner starts: stdout carries ONLY JSON events, one per line; everything
else (logging, warnings, progress bars) goes to stderr. Exit status: 0 done or preempted, 2 bad data or
parameters (a retry cannot help), 1 any other failure. SIGTERM means "checkpoint and stop": the current optimizer
step finishes, a checkpoint is written, a preempted event is printed and the process exits 0 (`--resume` goes on
from that checkpoint).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import IO

from .errors import BAD_PARAMS, EXIT_FAILED, EXIT_OK, MODEL_LOAD, StopSignal, TrainingError


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _claim_stdout() -> IO[str]:
    """Keep the real stdout for events and point fd 1 at stderr, so stray prints from any library (even
    C extensions) cannot corrupt the JSON stream."""
    sys.stdout.flush()
    events = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return events


def _quiet_libraries() -> None:
    # Set before transformers is imported: these are read at import time.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # tokenizers' fork warning; we tokenize up front
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    import warnings

    # Deprecation notices from the libraries are for their developers, not for someone training a model.
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # e.g. the "newly initialized classifier" report: expected here
    hf_logging.disable_progress_bar()


class ProgressBarSink:
    """A tqdm bar on stderr for people running training by hand."""

    def __init__(self, stream: IO[str]):
        self.stream = stream
        self.bar = None

    def emit(self, event: dict) -> None:
        kind = event.get("event")
        if kind == "start":
            from tqdm import tqdm

            self.bar = tqdm(total=event["total_steps"], file=self.stream, unit="step", desc="training")
        elif kind == "progress" and self.bar is not None:
            self.bar.set_postfix(loss=f"{event['loss']:.4f}", refresh=False)
            self.bar.update(1)
        elif kind == "eval" and self.bar is not None:
            shown = ", ".join(f"{k} {v:.4f}" for k, v in event["metrics"].items())
            self.bar.write(f"epoch {event['epoch']}: {shown}", file=self.stream)
        elif kind in ("done", "error"):
            if self.bar is not None:
                self.bar.close()
            if kind == "done":
                print(f"adapter saved to {event['adapter_dir']}", file=self.stream)
            else:
                print(f"training failed ({event['kind']}): {event['message']}", file=self.stream)
        elif kind == "early_stop" and self.bar is not None:
            self.bar.write(
                f"stopping early after epoch {event['epoch']}: {event['patience']} evaluations without a better "
                f"held-out score; keeping epoch {event['best_epoch']}",
                file=self.stream,
            )
        elif kind == "resumed" and self.bar is not None:
            self.bar.update(event["step"])
        elif kind == "checkpoint" and self.bar is not None:
            self.bar.write(f"checkpoint at step {event['step']}: {event['path']}", file=self.stream)
        elif kind == "preempted":
            if self.bar is not None:
                self.bar.close()
            print(
                f"stopped at step {event['step']}; continue with --resume and the last checkpoint folder",
                file=self.stream,
            )


class _WholeLines:
    """Emits with a pending stop held back, so an interruption never cuts an event line short."""

    def __init__(self, sink, stop: StopSignal):
        self.sink, self.stop = sink, stop

    def emit(self, event: dict) -> None:
        with self.stop.deferred():
            self.sink.emit(event)


def _parse_key_values(items: list[str]) -> dict[str, str]:
    values = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise TrainingError(BAD_PARAMS, f"--param takes key=value, got {item!r}")
        values[key.strip()] = value
    return values


def _spec_from_args(args) -> dict:
    """Build a job spec from convenience flags (no server needed)."""
    from .methods import get_method
    from .models import ModelRefError, resolve_model
    from .training_params import TRAINING_PARAMS

    given = _parse_key_values(args.param)
    training_names = {p.name for p in TRAINING_PARAMS}
    try:
        method_names = {p.name for p in get_method(args.method).params}
    except ValueError as exc:
        raise TrainingError(BAD_PARAMS, str(exc)) from exc
    params = {k: v for k, v in given.items() if k in training_names}
    method_params = {k: v for k, v in given.items() if k in method_names}
    unknown = sorted(set(given) - training_names - method_names)
    if unknown:
        raise TrainingError(
            BAD_PARAMS,
            f"unknown parameter(s) {', '.join(unknown)}; training parameters: {', '.join(sorted(training_names))}; "
            f"{args.method} parameters: {', '.join(sorted(method_names)) or '(none)'}",
        )
    try:
        model_path = resolve_model(args.model, model_root=args.model_root, revision=args.revision)
    except ModelRefError as exc:
        raise TrainingError(MODEL_LOAD, str(exc)) from exc
    data = Path(args.data)
    eval_data = Path(args.eval_data) if args.eval_data else None
    return {
        "task": args.task,
        "model_path": str(model_path),
        "method": args.method,
        "method_params": method_params,
        "train_file": str(data.resolve()),
        "train_format": args.format,
        "eval_file": str(eval_data.resolve()) if eval_data else None,
        "eval_format": args.format,
        "text_column": args.text_column,
        "label_column": args.label_column,
        "input_column": args.input_column,
        "messages_column": args.messages_column,
        "template": args.template,
        "group_column": args.group_column,
        "group_shared": args.group_shared,
        "params": params,
        "output_dir": str(Path(args.out).resolve()),
        "threads": args.threads,
        "metadata": {
            "base_model": args.model,
            "dataset_sha256": _sha256(data) if data.is_file() else None,
            "eval_dataset_sha256": _sha256(eval_data) if eval_data and eval_data.is_file() else None,
            "dataset_name": data.name,
        },
    }


def _spec_path_from_stdin() -> str:
    """A warm child (`train --spec -`, jobs/warm_child.py): import what every job needs while no job waits, then
    read the spec's path from stdin; an empty line or end of input means there is no job."""
    _quiet_libraries()
    from . import train  # noqa: F401  (torch, transformers and peft: seconds a job no longer waits for)

    return sys.stdin.readline().strip()


def _die_with_parent() -> None:
    """Linux: kill this process if the runner that started it dies (it runs in its own session, so no
    terminal or process-group signal would reach it). PEFTCORE_PARENT_PID names that runner. SIGKILL, not
    SIGTERM: SIGTERM means "checkpoint and stop", and with the runner gone nobody would upload the checkpoint."""
    parent = os.environ.get("PEFTCORE_PARENT_PID")
    if not parent or not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != int(parent):  # the parent died before the line above took effect
        raise SystemExit(1)


def _stop_on_sigterm() -> StopSignal:
    """SIGTERM (the runner cancelling, or its worker shutting down) asks training to checkpoint and stop."""
    import signal

    stop = StopSignal()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.request())
    return stop


def _train(args) -> int:
    stop = _stop_on_sigterm()  # first: until fit() runs, a SIGTERM is only remembered
    if args.spec:
        _die_with_parent()
        # The runner has already put the model on disk: never reach for the network.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    events = _claim_stdout()
    from .events import JsonLinesSink, TeeSink

    sink = JsonLinesSink(events)
    try:
        if args.spec == "-":
            args.spec = _spec_path_from_stdin()
            if not args.spec:
                return EXIT_OK  # the runner let this warm child go unused
        if args.spec:
            try:
                spec = json.loads(Path(args.spec).read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise TrainingError(BAD_PARAMS, f"cannot read the job spec {args.spec}: {exc}") from exc
            if not isinstance(spec, dict):
                raise TrainingError(BAD_PARAMS, f"the job spec {args.spec} must be a JSON object")
        else:
            spec = _spec_from_args(args)
            sink = TeeSink(sink, ProgressBarSink(sys.stderr))
        if args.resume:
            spec["resume_from"] = str(Path(args.resume).resolve())
        if args.micro_batch_size is not None:
            spec["micro_batch_size"] = args.micro_batch_size
        if args.rank:  # a helper rank: its events go nowhere (rank 0 reports for the job)
            spec.update(rank=args.rank, port=args.port)
        _quiet_libraries()
        from . import train
    except Exception as exc:  # before training starts: report it the same way run() reports its failures
        error = exc if isinstance(exc, TrainingError) else TrainingError("internal", f"{type(exc).__name__}: {exc}")
        sink.emit({"event": "error", "kind": error.kind, "message": error.message})
        return error.exit_code
    try:
        train.run(spec, _WholeLines(sink, stop), should_stop=stop)  # emits its own error event before raising
    except TrainingError as exc:
        return exc.exit_code
    return EXIT_OK


def _inspect(args) -> int:
    from .data import inspect_file

    report = inspect_file(
        args.file,
        fmt=args.format,
        text_column=args.text_column,
        label_column=args.label_column,
        preview_rows=args.preview_rows,
    )
    print(json.dumps(report, indent=2, ensure_ascii=False))
    return EXIT_OK if report["ok"] else EXIT_FAILED


def _add_counts(rows: list[dict], args) -> None:
    """Each method's trainable parameters at its defaults on --model, counted on the meta device (no weights)."""
    from .counting import count_trainable
    from .models import resolve_model

    folder = Path(args.model) if Path(args.model).is_dir() else resolve_model(args.model, model_root=args.model_root)
    for row in rows:
        try:
            row["count"] = count_trainable(folder, row["name"], {}, args.task)
        except ValueError as exc:  # the method does not fit this model: say why instead of a count
            row["count"], row["refused"] = None, str(exc)


def _methods(args) -> int:
    from .methods import all_methods, methods_as_json

    if args.json:
        rows = methods_as_json()
        if args.model:
            _add_counts(rows, args)
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    for method in all_methods():
        print(f"{method.name:14} {method.label:20} {method.family:16} {method.description}")
        for param in method.params:
            print(f"    {param.name}={param.default!r}  {param.help}")
    return EXIT_OK


def _prepare_gemma(args) -> int:
    from . import gemma_bundle

    try:
        gemma_bundle.prepare(args.model_root, log=lambda line: print(line, file=sys.stderr, flush=True))
    except (RuntimeError, ValueError, OSError) as exc:
        print(f"could not prepare {gemma_bundle.MODEL_ID}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _merge(args) -> int:
    from .merge import MergeError, merge

    try:
        merge(args.model, args.adapter, args.out, base_name=args.base_name, job_name=args.job_name)
    except MergeError as exc:
        print(f"cannot merge: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps({"merged": str(args.out)}))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    from .models import BUNDLED_MODEL_ID
    from .tasks import TASKS, TEXT_CLASSIFICATION

    parser = argparse.ArgumentParser(prog="python -m peftcore", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train an adapter; prints JSON events on stdout")
    train.add_argument(
        "--spec", help="a job spec JSON file (as written by the studio's runner); '-': its path on stdin, once imported"
    )
    # Set by rank 0 for the processes it starts (distributed.py), not by hand.
    train.add_argument("--rank", type=int, help=argparse.SUPPRESS)
    train.add_argument("--port", type=int, help=argparse.SUPPRESS)
    train.add_argument("--data", help="training file (csv, tsv, jsonl, json, parquet)")
    train.add_argument("--eval-data", help="evaluation file; default: hold out part of --data")
    train.add_argument("--format", help="file format when the extension does not tell")
    train.add_argument(
        "--text-column",
        help="the text, the prompt (sft; paths such as instances[0].input allowed) or the input (seq2seq)",
    )
    train.add_argument("--label-column", help="the label, the response (sft) or the target (seq2seq)")
    train.add_argument("--input-column", help="sft: a column appended to the prompt")
    train.add_argument("--messages-column", help="sft: a chat messages column instead of --text/--label-column")
    train.add_argument("--template", help="sft: auto (default), alpaca, chatml, gemma or plain")
    train.add_argument(
        "--group-column",
        help="one adapter per value of this column (a user, a language); with poly or multitask_prompt_tuning, "
        "one adapter with a task per value",
    )
    train.add_argument(
        "--group-shared", action="store_true", help="with --group-column: train a shared adapter on all rows first"
    )
    train.add_argument("--task", default=TEXT_CLASSIFICATION, choices=sorted(TASKS))
    train.add_argument("--method", default="lora")
    train.add_argument("--model", default=BUNDLED_MODEL_ID, help=f"{BUNDLED_MODEL_ID}, local:<folder> or owner/name")
    train.add_argument("--model-root", type=Path, help="folder that local:<folder> models live in")
    train.add_argument("--revision", help="hub revision (branch, tag or commit) for owner/name models")
    train.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a training or method parameter, e.g. --param epochs=5 --param r=16 (repeatable)",
    )
    train.add_argument("--threads", type=int, help="CPU threads for torch")
    train.add_argument("--out", default="peftcore-out", help="output folder (the adapter goes to OUT/adapter)")
    train.add_argument(
        "--resume",
        metavar="CHECKPOINT_DIR",
        help="continue from a checkpoint folder (OUT/checkpoints/step-N, written every "
        "checkpoint_every_steps/seconds of the spec and when SIGTERM stops training), with the same "
        "data and parameters",
    )
    train.add_argument(
        "--micro-batch-size",
        type=int,
        help="the most rows one forward pass takes; each batch is "
        "split into micro-batches whose gradients add up (use when a batch does not fit in memory)",
    )

    inspect = commands.add_parser("inspect", help="check a data file; prints a JSON report")
    inspect.add_argument("file")
    inspect.add_argument("--format")
    inspect.add_argument("--text-column")
    inspect.add_argument("--label-column")
    inspect.add_argument("--preview-rows", type=int, default=10)

    methods = commands.add_parser("methods", help="list the PEFT methods")
    methods.add_argument("--json", action="store_true", help="print the registry as JSON")
    methods.add_argument(
        "--model",
        help="with --json: add trainable-parameter counts for this model (a folder, "
        f"{BUNDLED_MODEL_ID} or local:<folder>)",
    )
    methods.add_argument("--model-root", type=Path, help="folder that local:<folder> models live in")
    methods.add_argument("--task", default=TEXT_CLASSIFICATION, choices=sorted(TASKS))

    prepare = commands.add_parser(
        "prepare-gemma", help="convert the bundled Gemma 3 270M (GGUF) to safetensors under --model-root, once"
    )
    prepare.add_argument("--model-root", type=Path, required=True)

    merge = commands.add_parser("merge", help="fold an adapter into its base model: one safetensors model folder")
    merge.add_argument("--model", type=Path, required=True, help="the base model folder")
    merge.add_argument("--adapter", type=Path, required=True, help="the adapter folder a job wrote")
    merge.add_argument("--out", type=Path, required=True, help="the folder to write (must not exist)")
    merge.add_argument("--base-name", default="the base model", help="the base model's name, for the model card")
    merge.add_argument("--job-name", default="", help="a title for the model card")
    from .combine import add_command

    add_command(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "train":
        if bool(args.spec) == bool(args.data):
            parser.error("train needs either --spec FILE or --data FILE")
        if args.data and not (args.text_column and args.label_column) and not args.messages_column:
            parser.error("--data needs --text-column and --label-column (or, for sft, --messages-column)")
        return _train(args)
    if args.command == "inspect":
        return _inspect(args)
    if args.command == "prepare-gemma":
        return _prepare_gemma(args)
    if args.command == "merge":
        return _merge(args)
    if args.command == "combine":
        from .combine import run_command

        return run_command(args)
    return _methods(args)
