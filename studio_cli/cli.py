"""The arguments and the entry point. Only argparse and the standard library here: a command's module (and with
it httpx and tqdm) is imported once the arguments are parsed, so `--help` answers at once."""

import argparse
import importlib
import json
import sys

from studio_cli import PROG
from studio_cli.errors import CliError

JOB_STATUSES = ["cancelled", "failed", "succeeded", "queued", "running"]


def key_value(text: str) -> tuple[str, object]:
    """KEY=VALUE, the value read as JSON when it is JSON (2, 1e-4, true, [1,2]), else kept as a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"'{text}' is not KEY=VALUE (such as epochs=2)")

    def refuse(constant):  # NaN and Infinity are JSON to Python, not to the API
        raise ValueError(constant)

    try:
        value = json.loads(raw, parse_constant=refuse)
    except ValueError:
        value = raw
    return key.strip(), value


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def _connection_options(*, top: bool) -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(add_help=False)
    unset = {} if top else {"default": argparse.SUPPRESS}
    options.add_argument(
        "--url", **unset, help="the studio's address, such as http://127.0.0.1:8000 (else STUDIO_URL, else login's)"
    )
    options.add_argument("--token", **unset, help="an API token (else STUDIO_TOKEN, else login's)")
    options.add_argument(
        "--progress", action="store_true", **unset, help="draw progress bars even when stderr is not a terminal"
    )
    return options


def build_parser() -> argparse.ArgumentParser:
    # The connection options work before or after the command: a command's copy defaults to SUPPRESS so that
    # it does not overwrite one given before the command.
    parser = argparse.ArgumentParser(
        prog=PROG,
        parents=[_connection_options(top=True)],
        description=(
            "The fine-tuning studio from a terminal: upload datasets, submit and watch jobs, download adapters."
        ),
    )
    shared = _connection_options(top=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, run: str, help_text: str) -> argparse.ArgumentParser:
        """run: "module:function" in studio_cli.commands, imported only when the command runs."""
        sub = commands.add_parser(name, parents=[shared], help=help_text, description=help_text)
        sub.set_defaults(run=run)
        return sub

    command(
        "login",
        "login:login",
        "check a token against the studio and save the address and token "
        "(~/.config/studio/config.json, readable by you alone)",
    )

    upload = command("upload", "upload:upload", "upload a dataset (CSV, TSV, JSONL, JSON or Parquet)")
    upload.add_argument("file")
    upload.add_argument("--name", help="the dataset's name (default: the file's)")
    upload.add_argument("--text-column", help="the text column, to check now rather than at submit")
    upload.add_argument("--label-column", help="the label column, to check now rather than at submit")
    upload.add_argument(
        "--wait", type=float, default=3600, help="seconds to wait for a large file's check on a worker (default 3600)"
    )

    submit = command("submit", "jobs:submit", "submit a training job")
    submit.add_argument("--dataset", type=int, required=True, help="dataset id (`datasets` lists them)")
    submit.add_argument("--method", required=True, help="PEFT method name (`methods` lists them)")
    submit.add_argument("--model", type=int, help="base model id (`models`); may be left out when there is one")
    submit.add_argument("--task", help="text-classification (default), sft, seq2seq or preference (DPO)")
    submit.add_argument("--text-column")
    submit.add_argument("--label-column")
    submit.add_argument(
        "--input-column", help="sft: a column appended to the prompt; preference: the rejected response column"
    )
    submit.add_argument(
        "--param",
        type=key_value,
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="a training parameter, such as epochs=2 or learning_rate=1e-4",
    )
    submit.add_argument(
        "--method-param",
        type=key_value,
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="a parameter of the method, such as r=16",
    )
    submit.add_argument("--name")
    submit.add_argument(
        "--group-column",
        help="one adapter per value of this column (a user, customer, language); with poly or "
        "multitask_prompt_tuning, one adapter with a task per value",
    )
    submit.add_argument(
        "--group-shared", action="store_true", help="with --group-column: start each from an adapter of all rows"
    )
    submit.add_argument("--priority", choices=["low", "normal", "high"])
    submit.add_argument("--watch", action="store_true", help="then watch it until it ends")
    submit.add_argument("--interval", type=_positive, default=2.0, help=argparse.SUPPRESS)

    combine = command(
        "combine",
        "jobs:combine",
        "combine finished LoRA jobs' adapters with weights into a new adapter (a job that evaluates it beside each)",
    )
    combine.add_argument("jobs", type=int, nargs="+", help="2 to 8 succeeded LoRA job ids of one base model and task")
    combine.add_argument(
        "--weights", help="one per job, comma separated; a negative weight subtracts (default: 1 each)"
    )
    combine.add_argument(
        "--combination",
        default="sum",
        choices=["sum", "svd", "linear", "ties", "dare_linear", "dare_ties", "magnitude_prune", "learned"],
        help="sum (default): the exact weighted sum; svd: the same at the largest rank; learned: X-LoRA's router "
        "trained on the first job's rows (SFT, preference); the rest: peft's merges",
    )
    combine.add_argument(
        "--density", type=float, help="ties, dare_* and magnitude_prune: the share of each change kept"
    )
    combine.add_argument("--eval-dataset", type=int, help="dataset id to score on (default: the first job's rows)")
    combine.add_argument("--name")
    combine.add_argument("--watch", action="store_true", help="then watch it until it ends")
    combine.add_argument("--interval", type=_positive, default=2.0, help=argparse.SUPPRESS)

    sweep = command(
        "sweep", "sweeps:sweep", "run a job's settings again for several methods and values (a sweep of jobs)"
    )
    sweep.add_argument("job", type=int, help="the job whose data, columns and settings every job shares")
    sweep.add_argument("--methods", required=True, help="comma separated, e.g. lora,ia3 (`methods` lists them)")
    sweep.add_argument(
        "--vary",
        type=key_value,
        action="append",
        default=[],
        metavar="NAME=V1,V2",
        help="a setting and its values, e.g. r=4,8,16 or learning_rate=5e-4,1e-3 (r, learning_rate, epochs; at most two)",
    )
    sweep.add_argument("--budget", type=int, help="random search: run this many of the combinations, drawn at random")
    sweep.add_argument("--name")
    show = command("sweep-show", "sweeps:show", "print a sweep's jobs, scores and the best")
    show.add_argument("sweep", type=int)

    watch = command("watch", "jobs:watch", "follow a job until it ends; exit 0 succeeded, 1 failed, 2 cancelled")
    watch.add_argument("job", type=int)
    watch.add_argument("--interval", type=_positive, default=2.0, help="seconds between polls (default 2)")

    download = command("download", "download:download", "download a succeeded job's adapter (a zip)")
    download.add_argument("job", type=int)
    download.add_argument("-o", "--output", help="file or folder to write to (default: the zip's own name here)")

    for name, help_text in (
        ("datasets", "list your team's datasets"),
        ("jobs", "list your team's jobs, newest first"),
        ("models", "list the base models"),
        ("methods", "list the PEFT methods"),
    ):
        listing = command(name, f"listings:{name}", help_text)
        listing.add_argument("--json", action="store_true", help="print the API's JSON instead of a table")
        if name == "jobs":
            listing.add_argument("--status", choices=JOB_STATUSES)
            listing.add_argument("--method", help="only jobs of this method (lora, ia3, ...)")
            listing.add_argument("--dataset", type=int, help="only jobs on this dataset id")
            listing.add_argument("--member", help="only jobs this user submitted")
            listing.add_argument("--search", help="only jobs whose name contains this")
            listing.add_argument("--limit", type=int, default=50, help="jobs per page (default 50)")
            listing.add_argument("--before", type=int, help="the page after this job id (older jobs)")
            listing.add_argument("--all", action="store_true", help="every page, not only the newest")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    module, function = args.run.split(":")
    try:
        run = getattr(importlib.import_module(f"studio_cli.commands.{module}"), function)
        return run(args)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
